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
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mjrelay/mjrelay/mailjet/webhook"
	"github.com/mjrelay/mjrelay/relay/pg"
	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// Options configure a Store. Zero values get the defaults noted.
type Options struct {
	// Pool is the connection pool; Close closes it with ClosePool.
	Pool      *pgxpool.Pool
	ClosePool bool
	// Retention is how long message records are kept (default 720h).
	Retention time.Duration
	// KeepBodies is how long raw messages are kept after the message left
	// the queue; 0 stores no bodies at all.
	KeepBodies time.Duration
	Logger     *slog.Logger
	// ReadOnly opens the store for queries only (mjrelay log): no writer,
	// no pruning, no migration; Record drops everything.
	ReadOnly bool
	// Buffer is how many events may wait for the writer (default 131072).
	Buffer int
	// MaxPendingBodyBytes caps the raw bodies waiting for the writer
	// (default 256 MiB).
	MaxPendingBodyBytes int64
	// PruneEvery is the pruning period (default 10m).
	PruneEvery time.Duration
	// CloseWait bounds how long Close goes on retrying to store what is
	// buffered while the database does not answer (default 10s).
	CloseWait time.Duration
	// Now is the clock (tests). Default time.Now.
	Now func() time.Time
}

// Store is an open traffic store in PostgreSQL. It is safe for concurrent
// use.
type Store struct {
	opts Options
	log  *slog.Logger
	db   *pgxpool.Pool

	in       chan *entry
	quit     chan struct{}
	done     chan struct{}
	w        *writer
	inFlight atomic.Int64 // entries taken by the writer, not yet stored

	closed        atomic.Bool
	closeOnce     sync.Once
	dropped       atomic.Uint64
	bodiesDropped atomic.Uint64
	writeErrors   atomic.Uint64
	pendingBody   atomic.Int64
	lastDropLog   atomic.Int64 // unix seconds
	lastErrLog    atomic.Int64 // unix ns
	loggedDropped atomic.Uint64
	pruneMu       sync.Mutex // one pruning run at a time in this process
}

var _ store.Store = (*Store)(nil)

// entry is one unit of work for the writer.
type entry struct {
	ev    trafficlog.Event
	mj    *webhook.Event
	flush chan struct{} // closed once everything before it is committed
	prune bool          // prune after it, then close flush
	body  []byte        // deflated ev.Raw (set by the writer)
}

// Open opens the store over a pool: it applies the schema's migrations
// (unless read-only) and starts the writer.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.Pool == nil {
		return nil, fmt.Errorf("pgstore: no connection pool")
	}
	if o.Retention <= 0 {
		o.Retention = 720 * time.Hour
	}
	o.KeepBodies = max(o.KeepBodies, 0)
	if o.Buffer <= 0 {
		o.Buffer = 1 << 17
	}
	if o.MaxPendingBodyBytes <= 0 {
		o.MaxPendingBodyBytes = 256 << 20
	}
	if o.PruneEvery <= 0 {
		o.PruneEvery = 10 * time.Minute
	}
	if o.CloseWait <= 0 {
		o.CloseWait = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{opts: o, log: o.Logger.With("component", "pgstore"), db: o.Pool,
		in: make(chan *entry, o.Buffer), quit: make(chan struct{}), done: make(chan struct{})}
	if o.ReadOnly {
		s.closed.Store(true)
		close(s.done)
		return s, nil
	}
	if err := pg.Migrate(ctx, o.Pool, Component, migrations, s.log); err != nil {
		return nil, fmt.Errorf("traffic store: %w", err)
	}
	s.w = newWriter(s)
	go s.w.run()
	return s, nil
}

// WantsBodies reports whether received events should carry the raw message.
func (s *Store) WantsBodies() bool { return s.opts.KeepBodies > 0 && !s.opts.ReadOnly }

// Record queues an event for the writer. It never waits: an event that
// finds the buffer full is dropped and counted.
func (s *Store) Record(e trafficlog.Event) {
	if e.Time.IsZero() {
		e.Time = s.opts.Now()
	}
	if !s.WantsBodies() {
		e.Raw = nil
	}
	s.enqueue(&entry{ev: e})
}

func (s *Store) enqueue(en *entry) {
	if s.closed.Load() {
		s.drop(1)
		return
	}
	n := int64(len(en.ev.Raw))
	if n > 0 && s.pendingBody.Add(n) > s.opts.MaxPendingBodyBytes {
		s.pendingBody.Add(-n)
		en.ev.Raw = nil
		s.bodiesDropped.Add(1)
		n = 0
	}
	select {
	case s.in <- en:
	default:
		s.pendingBody.Add(-n)
		s.drop(1)
	}
}

// drop counts n events lost, and logs it at most once a minute.
func (s *Store) drop(n uint64) {
	total := s.dropped.Add(n)
	now := s.opts.Now().Unix()
	last := s.lastDropLog.Load()
	if now-last >= 60 && s.lastDropLog.CompareAndSwap(last, now) {
		prev := s.loggedDropped.Swap(total)
		s.log.Warn("traffic store cannot keep up or reach PostgreSQL: events dropped from the inspection record (mail is not affected)",
			"dropped", total-prev, "dropped_total", total)
	}
}

// RecordMailjet queues Mailjet webhook events. Unlike Record it waits for
// room in the buffer until ctx ends, so that the webhook can answer 503 (and
// Mailjet retry) rather than lose events.
func (s *Store) RecordMailjet(ctx context.Context, evs []webhook.Event) error {
	for i := range evs {
		if s.closed.Load() {
			return store.ErrClosed
		}
		ev := evs[i] // the writer owns its copy
		select {
		case s.in <- &entry{mj: &ev}:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.quit:
			return store.ErrClosed
		}
	}
	return nil
}

// Flush waits until everything recorded before it is committed.
func (s *Store) Flush(ctx context.Context) error { return s.barrier(ctx, false) }

// Prune runs the retention pruning now, after what was recorded before it
// (it also runs every Options.PruneEvery), and waits for it.
func (s *Store) Prune(ctx context.Context) error { return s.barrier(ctx, true) }

func (s *Store) barrier(ctx context.Context, prune bool) error {
	if s.closed.Load() {
		return nil
	}
	ch := make(chan struct{})
	select {
	case s.in <- &entry{flush: ch, prune: prune}:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return nil
	}
}

// Health returns how many events were dropped (the buffer full, the store
// closed, or given up at Close while the database did not answer), how
// many bodies were left out, how many events wait for the writer, and how
// many batches could not be written (their events are lost; see the log).
func (s *Store) Health() store.Health {
	return store.Health{DroppedEvents: s.dropped.Load(), DroppedBodies: s.bodiesDropped.Load(),
		Pending: len(s.in) + int(s.inFlight.Load()), WriteErrors: s.writeErrors.Load()}
}

// Close stores what is buffered (retrying for at most Options.CloseWait
// while the database does not answer) and stops the writer, then closes
// the pool with Options.ClosePool. Record calls after Close are dropped.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if !s.opts.ReadOnly {
			s.closed.Store(true)
			close(s.quit)
			giveUp := time.AfterFunc(s.opts.CloseWait, s.w.cancel)
			<-s.done
			giveUp.Stop()
		}
		if s.opts.ClosePool {
			s.db.Close()
		}
	})
	return nil
}
