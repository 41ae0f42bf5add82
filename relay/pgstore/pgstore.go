// Package pgstore is the traffic store of a cluster (a store.Store) in
// PostgreSQL: every node records into the same tables and every node's web
// UI, API, webhook and `mjrelay log` see all the traffic. It keeps what the
// embedded store (relay/inspect) keeps, and derives states, timelines and
// statistics with the same rules (store.Row).
//
// As in the embedded store, [Store.Record] never waits: it hands the event
// to a buffered channel and returns; a writer goroutine commits what has
// gathered (for up to a tenth of a second) in one transaction, and an
// event that finds the buffer full is dropped and counted. Several nodes
// write at once: a batch locks the messages it touches (in id order, so
// that batches of two nodes never wait on each other in a circle), applies
// its events to them and writes them back, so a message received by one
// node and delivered by another ends in the same state whatever the order
// the two commit in. Each event is stored under a hash of itself, and one
// that is already there is skipped, so recording the same event twice
// (a batch retried after a lost answer to its commit, a migration run
// again) changes nothing. When the database is unreachable the writer
// retries the batch; the buffer absorbs the outage until it fills, and
// then events are dropped and counted (the mail is not affected).
//
// Pruning (retention, raw bodies, statistics) runs on one node at a time
// (an advisory lock), every PruneEvery.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mjrelay/mjrelay/relay/pg"
	"github.com/mjrelay/mjrelay/relay/store"
)

// Options configure a Store: a store's (read-only: no migration
// either), and the database's. Zero values get the defaults noted.
type Options struct {
	store.Options
	// Pool is the connection pool; Close closes it with ClosePool.
	Pool      *pgxpool.Pool
	ClosePool bool
	// CloseWait bounds how long Close goes on retrying to store what is
	// buffered while the database does not answer (default 10s).
	CloseWait time.Duration
}

// Store is an open traffic store in PostgreSQL. It is safe for concurrent
// use.
type Store struct {
	opts Options
	log  *slog.Logger
	db   *pgxpool.Pool
	w    *writer
	// schema is applied before the writer's first batch (the database
	// may have been away when the store opened); nil when read-only.
	schema *pg.Schema
	// Inbox takes Record, RecordMailjet, Flush and Prune, for the
	// writer.
	*store.Inbox

	fewWords   int // see matching
	closeOnce  sync.Once
	lastErrLog atomic.Int64 // unix ns
	pruneMu    sync.Mutex   // one pruning run at a time in this process
}

var _ store.Store = (*Store)(nil)

// Open opens the store over a pool: it applies the schema's migrations
// (unless read-only; if the database does not answer, as soon as it
// does) and starts the writer.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.Pool == nil {
		return nil, fmt.Errorf("pgstore: no connection pool")
	}
	o.Options = o.Options.WithDefaults()
	if o.CloseWait <= 0 {
		o.CloseWait = 10 * time.Second
	}
	s := &Store{opts: o, log: o.Logger.With("component", "pgstore"), db: o.Pool, fewWords: fewWords}
	if s.Inbox = store.NewInbox(o.Options, s.log); o.ReadOnly {
		// Queries alone create nothing: a database no node has used has
		// no traffic store yet.
		var exists bool
		if err := o.Pool.QueryRow(ctx, `SELECT to_regclass('store_messages') IS NOT NULL`).Scan(&exists); err != nil {
			return nil, fmt.Errorf("traffic store: %w", err)
		}
		if !exists {
			return nil, errors.New("traffic store: there is none in the cluster's database yet (no node has started on it)")
		}
		return s, nil
	}
	schema, err := pg.NewSchema(ctx, o.Pool, Component, migrations, o.Logger)
	if err != nil {
		return nil, fmt.Errorf("traffic store: %w", err)
	}
	s.schema = schema
	s.w = newWriter(s)
	go s.w.run()
	return s, nil
}

// Pool is the store's connection pool (the account snapshot shares it).
func (s *Store) Pool() *pgxpool.Pool { return s.db }

// Close stores what is buffered (retrying for at most Options.CloseWait
// while the database does not answer) and stops the writer, then closes
// the pool with Options.ClosePool. Record calls after Close are dropped.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.w != nil {
			giveUp := time.AfterFunc(s.opts.CloseWait, s.w.cancel)
			s.Inbox.Close()
			giveUp.Stop()
		}
		if s.opts.ClosePool {
			s.db.Close()
		}
	})
	return nil
}
