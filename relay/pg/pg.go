// Package pg is mjrelay's link to PostgreSQL in cluster mode: the
// connection pool, and the schema migrations that every node applies when
// it starts. Migrations are versioned per component (the queue, the
// traffic store...), applied in order inside one transaction under an
// advisory lock, so several nodes starting at once on an empty database
// apply each exactly once.
package pg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Options are a pool's settings.
type Options struct {
	// URL is a PostgreSQL connection URL or key=value string.
	URL string
	// Password is used when the URL has none (from the environment:
	// MJRELAY_POSTGRES_PASSWORD or PGPASSWORD, read by the wiring).
	Password string
	// MaxConns bounds the pool (default 16).
	MaxConns int32
	// AppName is shown in pg_stat_activity (default "mjrelay").
	AppName string
	// Away accepts a server that does not answer now (a relay node
	// starts while the database is down): Open returns the pool all the
	// same, and its connections are made once the server is back. Errors
	// that waiting does not cure (a bad URL, a refused password) still
	// fail.
	Away   bool
	Logger *slog.Logger
}

// Open connects a pool and checks that the server answers (or, with
// Options.Away, that it does not refuse us for good).
func Open(ctx context.Context, o Options) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(o.URL)
	if err != nil {
		return nil, fmt.Errorf("cluster.postgres_url: %s", Redact(err.Error(), o.URL))
	}
	if cfg.ConnConfig.Password == "" && o.Password != "" {
		cfg.ConnConfig.Password = o.Password
	}
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	} else if cfg.MaxConns < 16 {
		cfg.MaxConns = 16
	}
	name := o.AppName
	if name == "" {
		name = "mjrelay"
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = name
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		if o.Away && Temporary(err) {
			if o.Logger != nil {
				o.Logger.Warn("PostgreSQL unreachable: starting without it", "server", Where(o.URL), "err", Redact(err.Error(), o.URL))
			}
			return pool, nil
		}
		pool.Close()
		return nil, fmt.Errorf("PostgreSQL at %s: %w", Where(o.URL), err)
	}
	return pool, nil
}

// Where names the server of a connection URL without its password, for
// logs and errors.
func Where(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "the configured server"
	}
	return u.Host + u.Path
}

// Redact removes a URL's password from a text that may quote the URL.
func Redact(text, raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			return strings.ReplaceAll(text, p, "[redacted]")
		}
	}
	return text
}

// Migration is one step of a component's schema.
type Migration struct {
	Version int    // 1, 2, 3... within the component
	Name    string // what it does, for the log
	SQL     string // one or more statements
}

// lockKey is the advisory lock that serialises migrations across nodes.
const lockKey = 0x6d6a72656c6179 // "mjrelay"

// Migrate applies the component's migrations that the database does not
// have yet, in version order, in one transaction holding the advisory lock:
// a node that starts while another migrates waits, then finds the work
// done. A database with a newer schema than this binary knows is refused,
// so that an old node never writes to a schema it does not understand.
func Migrate(ctx context.Context, pool *pgxpool.Pool, component string, ms []Migration, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(lockKey)); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS mjrelay_migrations (
		component text NOT NULL, version int NOT NULL, name text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (component, version))`); err != nil {
		return err
	}
	var have int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM mjrelay_migrations WHERE component = $1`, component).Scan(&have); err != nil {
		return err
	}
	latest := 0
	for _, m := range ms {
		latest = max(latest, m.Version)
	}
	if have > latest {
		return fmt.Errorf("the database's %s schema is version %d, newer than this mjrelay knows (%d): upgrade this node", component, have, latest)
	}
	for _, m := range ms {
		if m.Version <= have {
			continue
		}
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return fmt.Errorf("%s migration %d (%s): %w", component, m.Version, m.Name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO mjrelay_migrations (component, version, name) VALUES ($1, $2, $3)`,
			component, m.Version, m.Name); err != nil {
			return err
		}
		log.Info("PostgreSQL schema migrated", "component", component, "version", m.Version, "migration", m.Name)
	}
	return tx.Commit(ctx)
}

// Temporary reports an error that may go away by itself: the connection
// lost or refused, the server starting or shutting down, a serialization
// failure or deadlock (retry the transaction).
func Temporary(err error) bool {
	if err == nil {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code[:2] {
		case "08", "57", "53": // connection exception, operator intervention (shutdown), insufficient resources
			return true
		}
		return pe.Code == "40001" || pe.Code == "40P01"
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, pgx.ErrNoRows) {
		return false
	}
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) || isNetErr(err)
}
