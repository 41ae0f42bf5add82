// Package pgaccount keeps the Mailjet account snapshot (account.Snapshots)
// in PostgreSQL, where every node of a cluster finds the last one any node
// fetched: a node that starts while Mailjet's API does not answer
// enforces the cluster's senders and domains, not nothing. It is relay-side
// because mailjet/ knows nothing of the relay's database.
package pgaccount

import (
	"context"
	"errors"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mjrelay/mjrelay/mailjet/account"
	"github.com/mjrelay/mjrelay/relay/pg"
)

// Component is the snapshot's name in relay/pg's migrations.
const Component = "account"

var migrations = []pg.Migration{{Version: 1, Name: "Mailjet account snapshot", SQL: `
CREATE TABLE account_snapshot (
	one        boolean PRIMARY KEY DEFAULT true CHECK (one),
	api_key    text NOT NULL,
	fetched_at timestamptz NOT NULL,
	data       text NOT NULL
)`}}

// Snapshots is the account snapshot of a cluster.
type Snapshots struct {
	db     *pgxpool.Pool
	schema *pg.Schema
}

var _ account.Snapshots = (*Snapshots)(nil)

// New applies the schema (if the database does not answer, as soon as it
// does) and returns the snapshot over pool.
func New(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) (*Snapshots, error) {
	schema, err := pg.NewSchema(ctx, pool, Component, migrations, log)
	if err != nil {
		return nil, err
	}
	return &Snapshots{db: pool, schema: schema}, nil
}

// Load returns the saved snapshot (nil when none is).
func (s *Snapshots) Load(ctx context.Context) (*account.Snapshot, error) {
	if err := s.schema.Ready(ctx); err != nil {
		return nil, err
	}
	var data string
	err := s.db.QueryRow(ctx, `SELECT data FROM account_snapshot`).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return account.DecodeSnapshot([]byte(data))
}

// Save keeps snap unless the saved one is newer and of the same API key
// (a node whose refresh ended late does not undo another's).
func (s *Snapshots) Save(ctx context.Context, snap *account.Snapshot) error {
	data, err := account.EncodeSnapshot(snap)
	if err != nil {
		return err
	}
	if err := s.schema.Ready(ctx); err != nil {
		return err
	}
	_, err = s.db.Exec(ctx, `INSERT INTO account_snapshot (api_key, fetched_at, data) VALUES ($1, $2, $3)
		ON CONFLICT (one) DO UPDATE SET api_key = excluded.api_key, fetched_at = excluded.fetched_at, data = excluded.data
		WHERE account_snapshot.fetched_at <= excluded.fetched_at OR account_snapshot.api_key <> excluded.api_key`,
		snap.APIKey, snap.FetchedAt, string(data))
	return err
}

// Where names the place in the log.
func (s *Snapshots) Where() string { return "PostgreSQL (account_snapshot)" }
