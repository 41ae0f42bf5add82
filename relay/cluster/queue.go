// Package cluster is what a node of a cluster adds around the PostgreSQL
// queue (relay/pgqueue): the local hold while the database is unreachable
// (Queue), the queue actions that reach the whole cluster (Control), and
// the periodic jobs that run once per cluster (Singleton).
//
// The local hold. A node never refuses Odoo because PostgreSQL is away: a
// Put the database does not take in time goes to the node's own segment
// spool (fsync before the 250, as in embedded mode). While the database
// is unreachable the node delivers what it holds locally, besides the
// claims it still holds within their lease. When the database answers
// again, the locally held messages are moved into it — each one only
// while no attempt of it is under way, and never one an attempt could
// start meanwhile — then deleted locally; the move skips an id already
// queued or finished (the queue's tombstones), so nothing is delivered
// twice. A Put that failed in a way that leaves its commit in doubt (a
// timeout, a connection lost after the statement was sent) is held but
// never delivered locally: it waits for the move, which finds out. After a
// restart the held messages found in the spool are treated the same way.
//
// Degraded is not "not ready": the node still answers every client and
// makes each message durable before the 250, so a load balancer should
// keep sending it mail (taking it out would move the same load onto the
// other nodes, which reach the same database or not at all). /readyz
// says "ready (degraded: …)" and the metrics and UI show what is held.
package cluster

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mjrelay/mjrelay/relay/pgqueue"
	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/spool"
)

// Queue is a node's queue: the cluster's, and the local spool for when
// the database is unreachable. It is a queue.Queue (the UI, the control
// socket and intake use it); the scheduler delivers through Deliverer.
type Queue struct {
	pg    *pgqueue.Queue
	local *spool.Spool
	pool  *pgxpool.Pool
	log   *slog.Logger
	// PutTimeout bounds the wait for the database before a message is
	// held locally instead.
	putTimeout time.Duration

	mu       sync.Mutex
	inflight map[string]bool // local messages being attempted
	moving   map[string]bool // local messages being moved in
	doubt    map[string]bool // local messages that may be in the database too

	degraded atomic.Bool
	since    atomic.Int64 // unix ns: degraded since
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

var _ queue.Queue = (*Queue)(nil)

// New wraps the cluster's queue and the node's local spool (both stay
// open until Close); messages found in the spool are moved in as soon as
// the database answers.
func New(pg *pgqueue.Queue, local *spool.Spool, pool *pgxpool.Pool, putTimeout time.Duration, log *slog.Logger) *Queue {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	q := &Queue{pg: pg, local: local, pool: pool, log: log, putTimeout: putTimeout,
		inflight: map[string]bool{}, moving: map[string]bool{}, doubt: map[string]bool{}}
	for _, it := range local.List() {
		q.doubt[it.Envelope.ID] = true
	}
	q.ctx, q.cancel = context.WithCancel(context.Background())
	q.wg.Add(1)
	go q.mover()
	return q
}

// PG is the cluster's queue.
func (q *Queue) PG() *pgqueue.Queue { return q.pg }

// NewID returns a cluster-wide unique id.
func (q *Queue) NewID() string { return q.pg.NewID() }

// Admit checks the limits of where the message would go.
func (q *Queue) Admit(size int64) error {
	if q.degraded.Load() {
		return q.local.Admit(size)
	}
	return q.pg.Admit(size)
}

// Put stores the message in the cluster's queue or, if the database does
// not take it within the put timeout, in the local spool.
func (q *Queue) Put(ctx context.Context, env *queue.Envelope, parts ...[]byte) error {
	if !q.degraded.Load() {
		pctx, cancel := context.WithTimeout(ctx, q.putTimeout)
		err := q.pg.Put(pctx, env, parts...)
		cancel()
		switch {
		case err == nil, errors.Is(err, queue.ErrFull), errors.Is(err, queue.ErrClosed), ctx.Err() != nil:
			return err
		}
		q.setDegraded(err)
		if !sureNotCommitted(err) {
			q.mu.Lock()
			q.doubt[env.ID] = true
			q.mu.Unlock()
		}
	}
	return q.local.Put(ctx, env, parts...)
}

// sureNotCommitted reports an error that proves the statement never
// reached the server.
func sureNotCommitted(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) || pgconn.SafeToRetry(err)
}

func (q *Queue) setDegraded(err error) {
	if !q.degraded.Swap(true) {
		q.since.Store(time.Now().UnixNano())
		q.log.Warn("PostgreSQL unreachable: new mail is held in the local spool (fsync before 250) and moved in when it is back", "err", err)
	}
}

// Degraded reports whether new mail is being held locally, and since when.
func (q *Queue) Degraded() (bool, time.Time) {
	if !q.degraded.Load() {
		return false, time.Time{}
	}
	return true, time.Unix(0, q.since.Load())
}

// HeldLocally is how many messages the local spool holds.
func (q *Queue) HeldLocally() int { return q.local.Stats().Messages }

// Subscribe feeds fn the cluster's claims and the local messages.
func (q *Queue) Subscribe(fn func(queue.Item)) {
	q.local.Subscribe(fn)
	q.pg.Subscribe(fn)
}

func (q *Queue) isLocal(id string) bool {
	_, err := q.local.Get(id)
	return err == nil
}

// Get returns a message from the cluster's queue or the local spool.
func (q *Queue) Get(id string) (queue.Item, error) {
	if it, err := q.local.Get(id); err == nil {
		return it, nil
	}
	return q.pg.Get(id)
}

// Body returns a message's bytes.
func (q *Queue) Body(id string) ([]byte, error) {
	if b, err := q.local.Body(id); err == nil {
		return b, nil
	}
	return q.pg.Body(id)
}

// SetState records progress where the message is.
func (q *Queue) SetState(ctx context.Context, st queue.State) error {
	if q.isLocal(st.ID) {
		defer q.ended(st.ID)
		return q.local.SetState(ctx, st)
	}
	return q.pg.SetState(ctx, st)
}

// Done removes the message where it is.
func (q *Queue) Done(ctx context.Context, id string) error {
	if q.isLocal(id) {
		defer q.ended(id)
		return q.local.Done(ctx, id)
	}
	return q.pg.Done(ctx, id)
}

func (q *Queue) ended(id string) {
	q.mu.Lock()
	delete(q.inflight, id)
	q.mu.Unlock()
}

// List returns the cluster's messages and those held locally, oldest
// first (the cluster's alone if the database answers nothing).
func (q *Queue) List() []queue.Item {
	all := append(q.pg.List(), q.local.List()...)
	slices.SortFunc(all, func(a, b queue.Item) int { return compare(a.Envelope.ID, b.Envelope.ID) })
	return slices.CompactFunc(all, func(a, b queue.Item) bool { return a.Envelope.ID == b.Envelope.ID })
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Stats adds the local spool's totals to the cluster's.
func (q *Queue) Stats() queue.Stats {
	a, b := q.pg.Stats(), q.local.Stats()
	return queue.Stats{Messages: a.Messages + b.Messages, DiskBytes: a.DiskBytes + b.DiskBytes, Segments: b.Segments}
}

// Close stops moving, then closes both queues.
func (q *Queue) Close() error {
	q.cancel()
	q.wg.Wait()
	return errors.Join(q.pg.Close(), q.local.Close())
}

// Deliverer is the queue as the node's scheduler sees it: local messages
// while degraded (not one in doubt, not one being moved), and the
// cluster's through pgqueue's Deliverer (claims only).
type Deliverer struct{ q *Queue }

// Deliverer returns the scheduler's view.
func (q *Queue) Deliverer() Deliverer { return Deliverer{q} }

// Get hands out a message this node may attempt now, or ErrNotFound.
func (d Deliverer) Get(id string) (queue.Item, error) {
	q := d.q
	if it, err := q.local.Get(id); err == nil {
		q.mu.Lock()
		defer q.mu.Unlock()
		if !q.degraded.Load() || q.moving[id] || q.doubt[id] {
			return queue.Item{}, queue.ErrNotFound // it is moved in, then claimed
		}
		q.inflight[id] = true
		return it, nil
	}
	return q.pg.Deliverer().Get(id)
}

// Body returns the message's bytes.
func (d Deliverer) Body(id string) ([]byte, error) {
	if b, err := d.q.local.Body(id); err == nil {
		return b, nil
	}
	return d.q.pg.Deliverer().Body(id)
}

// Unclaim gives back a held message whose check cannot run now: a local
// one may be moved in again, a claim of the cluster's goes to another node.
func (d Deliverer) Unclaim(ctx context.Context, id string) {
	if d.q.isLocal(id) {
		d.q.ended(id)
		return
	}
	d.q.pg.Deliverer().Unclaim(ctx, id)
}

// SetState records the attempt's outcome.
func (d Deliverer) SetState(ctx context.Context, st queue.State) error { return d.q.SetState(ctx, st) }

// Done removes the message.
func (d Deliverer) Done(ctx context.Context, id string) error { return d.q.Done(ctx, id) }

// LocalList lists the messages held in the local spool.
func (q *Queue) LocalList() []queue.Item { return q.local.List() }
