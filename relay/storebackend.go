package relay

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mjrelay/mjrelay/mailjet/account"
	"github.com/mjrelay/mjrelay/relay/cluster"
	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/feedback"
	"github.com/mjrelay/mjrelay/relay/inspect"
	"github.com/mjrelay/mjrelay/relay/pg"
	"github.com/mjrelay/mjrelay/relay/pgaccount"
	"github.com/mjrelay/mjrelay/relay/pgfeedback"
	"github.com/mjrelay/mjrelay/relay/pgstore"
	"github.com/mjrelay/mjrelay/relay/store"
)

// The store side's backends: the traffic store (the embedded SQLite store
// in data_dir, or in cluster mode the cluster's store in PostgreSQL, which
// every node records into and reads: the web UI, the API, the webhook,
// mjrelay log), the Mailjet account snapshot and the Odoo feedback outbox.
// In cluster mode a relay opens them on its one pool (r.pool); a command
// alone (mjrelay log, the migration) on a pool of its own.

// openStore opens the traffic store: the embedded one when pool is nil,
// else the cluster's on pool (closed with the store when closePool);
// read-only for queries alone (mjrelay log).
func openStore(ctx context.Context, cfg *config.Config, pool *pgxpool.Pool, closePool, readOnly bool, log *slog.Logger) (store.Store, error) {
	o := store.Options{ReadOnly: readOnly, Retention: cfg.Store.Retention.D(), KeepBodies: cfg.Store.KeepBodies.D(), Logger: log}
	if pool == nil {
		st, err := inspect.Open(inspect.Path(cfg.DataDir), o)
		if err != nil {
			return nil, err
		}
		return st, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := pgstore.Open(ctx, pgstore.Options{Options: o, Pool: pool, ClosePool: closePool})
	if err != nil {
		return nil, fmt.Errorf("%w (PostgreSQL at %s)", err, pg.Where(cfg.Cluster.PostgresURL.Reveal()))
	}
	return st, nil
}

// openOwnStore opens the configured traffic store for a command: in
// cluster mode on a pool of its own, closed with the store.
func openOwnStore(ctx context.Context, cfg *config.Config, readOnly bool, log *slog.Logger) (store.Store, error) {
	if !cfg.Clustered() {
		return openStore(ctx, cfg, nil, false, readOnly, log)
	}
	pool, err := OpenPool(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	st, err := openStore(ctx, cfg, pool, true, readOnly, log)
	if err != nil {
		pool.Close()
	}
	return st, err
}

// accountSnapshots is where the Mailjet account snapshot is kept: in
// cluster mode in the cluster's database (every node finds the newest any
// node fetched); else nil, the file in data_dir.
func accountSnapshots(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) (account.Snapshots, error) {
	if pool == nil {
		return nil, nil
	}
	return pgaccount.New(ctx, pool, log)
}

// clusterOutbox is the Odoo feedback outbox of a cluster, on pool: the
// webhook of any node adds, the reporter of any node claims.
func clusterOutbox(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) (feedback.Outbox, error) {
	o, err := pgfeedback.New(ctx, pool, log)
	if err != nil {
		return nil, fmt.Errorf("feedback outbox in PostgreSQL: %w", err)
	}
	return o, nil
}

// followAccount runs the Mailjet account refresh on one node of the
// cluster (cluster.Singleton); until this node holds it, and again if it
// loses it, the node follows: it adopts the snapshot the refreshing node
// saves in the database (account.Cache.Follow). It returns when ctx ends.
func followAccount(ctx context.Context, pool *pgxpool.Pool, acct *account.Cache, refresh time.Duration, log *slog.Logger) {
	follow := func() (stop func()) {
		fctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); acct.Follow(fctx) }()
		return func() { cancel(); <-done }
	}
	stop := follow()
	cluster.Singleton{Pool: pool, Name: "mailjet account refresh", Retry: min(refresh, time.Minute), Log: log}.
		Hold(ctx, func(ctx context.Context) {
			stop()
			acct.Run(ctx)
			stop = follow()
		})
	stop()
}
