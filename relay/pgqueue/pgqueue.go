// Package pgqueue is the queue.Queue of cluster mode: every node's
// messages in one PostgreSQL database, so that any node delivers any
// message and a dead node's work moves to the others.
//
// Acceptance. Put returns only once the transaction holding the message
// (bytes, envelope, class, state) has committed, with the database's own
// synchronous_commit. Concurrent Puts share one statement and one commit
// (batch.go: a group commit, as the spool's fsync), so a node is not
// one-commit-per-message slow. Completions (Done) are batched the same way,
// and leave a tombstone (mjrelay_queue_done) so that nothing finished is
// ever queued again by a move or a migration that runs twice.
//
// Claims. A node attempts a message only while it holds the claim on it:
// its instance id in the row's owner column. The claim's lease is the
// node's heartbeat (a row in mjrelay_nodes renewed every lease/5): one
// write renews every claim the node holds, whatever their number, and a
// node that stops beating — killed, hung, or cut from the database — loses
// them all when its last beat is older than the lease. Another node then
// clears them (reaping) and claims the messages as any others. A node
// reaps only after being connected itself for a whole lease, so that
// after an outage of the database the nodes that survived it beat again
// before anyone takes their work, and a node starts no attempt once its
// own lease may have run out.
//
// Cluster-wide lanes. Claims are taken per lane (transactional first)
// under a transaction-scoped advisory lock per lane, in one round trip: the
// claim counts the lane's claims of live nodes and takes at most the
// lane's concurrency minus that, FOR UPDATE SKIP LOCKED, oldest due
// first; a lane's rate is a token bucket in mjrelay_lanes spent by the
// same statement. A claim is one attempt: SetState (deferred) writes the
// state and releases the claim, Done deletes the row. So the lane's
// concurrency and rate hold for the cluster as a whole, bulk never takes
// transactional capacity, and a deferred message goes to whichever node
// is free when it is due.
//
// One scheduler. The scheduler (relay/deliver) is the embedded mode's:
// Subscribe feeds it the messages this node claimed (ready at once) and,
// once, those deferred (its timer heap holds them, as in embedded mode);
// Deliverer is the view of the queue it delivers through: its Get hands
// out a claimed message, or claims a due deferred one on the spot (within
// the lane's capacity), and refuses anything else, so a timer that fires
// on a node never attempts a message another node holds. A message
// deferred on another node is not in this node's heap: the claim loop
// takes it when it is due (it sleeps until the earliest due time).
//
// Wake-ups. A Put notifies the other nodes (LISTEN/NOTIFY on
// mjrelay_queue, sent by the same statement that inserts, so it is
// delivered on commit): every node's claim loop runs at once, not on a
// tick. The loop also runs after each local completion (capacity freed),
// at the earliest due time, and every lease/4 (reaping).
//
// Held mail (accepted while the sender could not be checked) waits in
// the database outside the lanes until a node that can run the check
// releases it: see held.go.
//
// Administration from any node: RetryNow and Delete act in the database;
// a message that a live node holds is deleted by that node (a NOTIFY on
// mjrelay_control reaches its OnDelete, i.e. its scheduler, which knows
// whether the attempt in flight delivered it).
package pgqueue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mjrelay/mjrelay/relay/pg"
	"github.com/mjrelay/mjrelay/relay/queue"
)

var errStopped = queue.ErrClosed

// Lane is one delivery lane's cluster-wide limits.
type Lane struct {
	Class       string
	Concurrency int     // attempts in flight in the whole cluster
	Rate        float64 // messages per second in the whole cluster; 0 = no cap
}

// Options configure a queue.
type Options struct {
	// Node names this node (the UI, the records); Instance tells this
	// process from an earlier one of the same node (default: random).
	Node string
	// Lease is how long a claim lasts without a heartbeat (default 60 s).
	Lease time.Duration
	// Lanes in priority order (default: transactional and bulk, 64
	// each); a message whose class names no lane is claimed in the first.
	Lanes       []Lane
	MaxMessages int   // 0 = no limit
	MaxBytes    int64 // 0 = no limit
	// Admin opens the queue for administration only (mjrelay queue,
	// migrate): no heartbeat, no claims, no listening.
	Admin  bool
	Logger *slog.Logger
}

// Queue is a node's handle on the cluster's queue. Safe for concurrent use.
type Queue struct {
	pool     *pgxpool.Pool
	o        Options
	log      *slog.Logger
	instance string
	ids      *queue.IDs

	puts  *batcher[*putOp]
	dones *batcher[string]

	mu       sync.Mutex
	held     map[string]*held // claims of this instance
	fedHeld  map[string]bool  // held messages the subscribers were fed (held.go)
	subs     []func(queue.Item)
	claiming bool            // the claim loop runs
	dirty    map[string]bool // lanes to claim in at the next round
	dropped  []string        // claims not attempted while the lease was in doubt
	onDelete func(id string)
	report   func() Info
	pending  map[string]*queue.State // outcomes to write once the database answers (nil: Done)

	tot totals

	lastBeat       atomic.Int64 // unix ns when the last good heartbeat was sent
	connectedSince atomic.Int64 // unix ns since when the heartbeats succeed
	up             atomic.Bool
	wake           chan struct{}
	ctx            context.Context
	cancel         context.CancelFunc
	wg             sync.WaitGroup
	closed         atomic.Bool
}

// held is a message this instance claimed.
type held struct {
	item queue.Item
	body []byte
}

// Open migrates the schema and joins the cluster as a node: its heartbeat,
// listening and (once something subscribes) claiming start. The pool
// stays the caller's.
func Open(ctx context.Context, pool *pgxpool.Pool, o Options) (*Queue, error) {
	if o.Lease <= 0 {
		o.Lease = time.Minute
	}
	if len(o.Lanes) == 0 {
		o.Lanes = []Lane{{Class: "transactional", Concurrency: 64}, {Class: "bulk", Concurrency: 64}}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if err := pg.Migrate(ctx, pool, component, migrations, o.Logger); err != nil {
		return nil, err
	}
	q := &Queue{pool: pool, o: o, log: o.Logger, held: map[string]*held{}, fedHeld: map[string]bool{}, pending: map[string]*queue.State{},
		wake: make(chan struct{}, 1)}
	var r [4]byte
	q.ids = queue.NewIDs(6)
	rand.Read(r[:])
	q.instance = o.Node + "/" + hex.EncodeToString(r[:])
	q.ctx, q.cancel = context.WithCancel(context.Background())
	q.puts = newBatcher(2, 256, q.insert)
	q.dones = newBatcher(1, 256, q.complete)
	if err := q.tot.refresh(ctx, pool); err != nil {
		q.stopWorkers()
		return nil, err
	}
	if o.Admin {
		return q, nil
	}
	now := time.Now()
	if err := q.beat(ctx); err != nil {
		q.stopWorkers()
		return nil, fmt.Errorf("joining the cluster: %w", err)
	}
	q.connectedSince.Store(now.UnixNano())
	q.wg.Add(2)
	go q.heartbeat()
	go q.listen()
	return q, nil
}

// Instance is this process's id in the cluster (node/random).
func (q *Queue) Instance() string { return q.instance }

// Node is this node's name.
func (q *Queue) Node() string { return q.o.Node }

// OnDelete sets what runs when another node asks this one to delete a
// message it holds (the scheduler's Delete).
func (q *Queue) OnDelete(fn func(id string)) { q.mu.Lock(); q.onDelete = fn; q.mu.Unlock() }

// Close stops claiming and beating, writes what outcomes it can, gives
// back the claims it holds (another node takes them at once) and leaves
// the cluster. Queued messages stay.
func (q *Queue) Close() error {
	if q.closed.Swap(true) {
		return nil
	}
	q.cancel()
	q.wg.Wait()
	q.stopWorkers()
	if q.o.Admin {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q.flushPending(ctx)
	q.mu.Lock()
	q.held = map[string]*held{}
	q.mu.Unlock()
	_, err := q.pool.Exec(ctx, `WITH r AS (UPDATE mjrelay_queue SET owner = NULL WHERE owner = $1 RETURNING class)
		SELECT pg_notify('mjrelay_queue', 'released') FROM (SELECT count(*) AS n FROM r) c WHERE c.n > 0`, q.instance)
	if err == nil {
		_, err = q.pool.Exec(ctx, `UPDATE mjrelay_nodes SET stopped_at = now() WHERE instance = $1`, q.instance)
	}
	if err != nil {
		q.log.Warn("leaving the cluster: claims not given back, other nodes take them over when the lease ends", "err", err)
	}
	return nil
}

func (q *Queue) stopWorkers() {
	q.puts.close()
	q.dones.close()
}

// NewID returns a fresh id: 12 hex digits of Unix milliseconds (ids sort
// by time), then 12 of a per-process random prefix plus a counter, unique
// in the cluster.
func (q *Queue) NewID() string { return q.ids.New() }

// Admit reports ErrFull when a message of size bytes would pass the
// queue's limits (counted cluster-wide, refreshed every heartbeat, plus
// this node's own puts and completions since).
func (q *Queue) Admit(size int64) error { return q.tot.admit(q.o, size, false) }

type putOp struct {
	id, class string
	held      bool
	env       []byte
	body      []byte
	due       time.Time
}

// Put stores a message; it returns once the transaction holding it has
// committed. A Put whose context ends may still commit: the caller does
// not know (see relay/cluster, which keeps such a message locally and
// moves it in later; the tombstones and the primary key make that safe).
func (q *Queue) Put(ctx context.Context, env *queue.Envelope, parts ...[]byte) error {
	if q.closed.Load() {
		return queue.ErrClosed
	}
	size := 0
	for _, p := range parts {
		size += len(p)
	}
	env.Size = int64(size)
	if err := q.tot.admit(q.o, env.Size, true); err != nil {
		return err
	}
	defer q.tot.unreserve(env.Size)
	ej, err := json.Marshal(env)
	if err != nil {
		return err
	}
	body := make([]byte, 0, size)
	for _, p := range parts {
		body = append(body, p...)
	}
	due := env.Received
	if due.IsZero() {
		due = time.Now()
	}
	if err := q.puts.do(ctx, &putOp{id: env.ID, class: q.laneOf(env.Class), held: env.Hold != "", env: ej, body: body, due: due}); err != nil {
		return err
	}
	q.tot.add(1, env.Size)
	q.poke(q.laneOf(env.Class))
	return nil
}

// insert is the group commit of Puts: one statement inserts them all and
// notifies the other nodes on commit.
func (q *Queue) insert(ctx context.Context, ops []*putOp) []error {
	n := len(ops)
	ids, classes, accepted := make([]string, n), make([]string, n), make([]string, n)
	envs, bodies := make([][]byte, n), make([][]byte, n)
	sizes, dues, held := make([]int64, n), make([]time.Time, n), make([]bool, n)
	for i, o := range ops {
		ids[i], classes[i], envs[i], bodies[i], sizes[i], dues[i], accepted[i] = o.id, o.class, o.env, o.body, int64(len(o.body)), o.due, q.o.Node
		held[i] = o.held
	}
	_, err := q.pool.Exec(ctx, `WITH ins AS (
		INSERT INTO mjrelay_queue (id, class, envelope, size, body, due, accepted_by, held)
		SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bigint[], $5::bytea[], $6::timestamptz[], $7::text[], $8::bool[])
		RETURNING class)
		SELECT pg_notify('mjrelay_queue', string_agg(DISTINCT class, ',')) FROM ins`,
		ids, classes, envs, sizes, bodies, dues, accepted, held)
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// laneOf is the lane a class is claimed in.
func (q *Queue) laneOf(class string) string {
	for _, l := range q.o.Lanes {
		if l.Class == class {
			return class
		}
	}
	return q.o.Lanes[0].Class
}

const itemCols = `envelope, attempts, next_at, last_error, pending, released`

// scanItem reads the columns of itemCols (then those in more).
func scanItem(row pgx.Row, more ...any) (queue.Item, error) {
	var it queue.Item
	var env []byte
	var next *time.Time
	dest := append([]any{&env, &it.State.Attempts, &next, &it.State.LastError, &it.State.Pending, &it.State.Released}, more...)
	if err := row.Scan(dest...); err != nil {
		return it, err
	}
	if err := json.Unmarshal(env, &it.Envelope); err != nil {
		return it, err
	}
	it.State.ID = it.Envelope.ID
	if next != nil {
		it.State.Next = *next
	}
	return it, nil
}

// Get returns one queued message.
func (q *Queue) Get(id string) (queue.Item, error) {
	q.mu.Lock()
	if h := q.held[id]; h != nil {
		q.mu.Unlock()
		return h.item, nil
	}
	q.mu.Unlock()
	it, err := scanItem(q.pool.QueryRow(q.ctxOrBackground(), `SELECT `+itemCols+` FROM mjrelay_queue WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return it, queue.ErrNotFound
	}
	return it, err
}

// Body returns a queued message's bytes.
func (q *Queue) Body(id string) ([]byte, error) {
	q.mu.Lock()
	if h := q.held[id]; h != nil && h.body != nil {
		q.mu.Unlock()
		return h.body, nil
	}
	q.mu.Unlock()
	var b []byte
	err := q.pool.QueryRow(q.ctxOrBackground(), `SELECT body FROM mjrelay_queue WHERE id = $1`, id).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, queue.ErrNotFound
	}
	return b, err
}

// List returns every queued message in the cluster, oldest first.
func (q *Queue) List() []queue.Item { return q.items("listing the queue", "") }

// items lists the queued messages that where selects, oldest first (what
// is logged as doing on failure).
func (q *Queue) items(doing, where string) []queue.Item {
	out, err := q.query(q.ctxOrBackground(), where)
	if err != nil {
		q.log.Warn(doing, "err", err)
	}
	return out
}

// query lists the queued messages that where (with args) selects, oldest
// first.
func (q *Queue) query(ctx context.Context, where string, args ...any) ([]queue.Item, error) {
	rows, err := q.pool.Query(ctx, `SELECT `+itemCols+` FROM mjrelay_queue `+where+` ORDER BY id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []queue.Item
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return out, err
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

// Stats returns the cluster's totals (DiskBytes: the messages' bytes).
func (q *Queue) Stats() queue.Stats {
	var st queue.Stats
	err := q.pool.QueryRow(q.ctxOrBackground(), `SELECT count(*), coalesce(sum(size), 0) FROM mjrelay_queue`).Scan(&st.Messages, &st.DiskBytes)
	if err != nil {
		m, b := q.tot.now()
		return queue.Stats{Messages: m, DiskBytes: b}
	}
	return st
}

// ctxOrBackground bounds reads by the queue's life and a timeout.
func (q *Queue) ctxOrBackground() context.Context {
	if q.ctx.Err() != nil {
		return context.Background()
	}
	return q.ctx
}

// SetState records a message's progress and gives its claim back: the
// message is due again at st.Next (or at once), for whichever node is
// free then. If the database does not answer, the state is kept and
// written once it does (the claim stays this node's meanwhile).
func (q *Queue) SetState(ctx context.Context, st queue.State) error {
	err := q.writeState(ctx, st)
	if err != nil && pg.Temporary(err) && q.holds(st.ID) {
		q.keepPending(st.ID, &st)
		return nil
	}
	q.release(st.ID)
	return err
}

func (q *Queue) writeState(ctx context.Context, st queue.State) error {
	var next *time.Time
	if !st.Next.IsZero() {
		next = &st.Next
	}
	var class string
	var ready bool
	err := q.pool.QueryRow(ctx, `UPDATE mjrelay_queue SET attempts = $2, next_at = $3, due = coalesce($3, now()),
			last_error = $4, pending = $5, owner = CASE WHEN owner = $6 THEN NULL ELSE owner END, released = $7
		WHERE id = $1 RETURNING class, due <= now() AND owner IS NULL`,
		st.ID, st.Attempts, next, st.LastError, st.Pending, q.instance, st.Released).Scan(&class, &ready)
	if errors.Is(err, pgx.ErrNoRows) {
		return queue.ErrNotFound
	}
	if err == nil && ready {
		// Due now (a retry asked for): wake the claim loops.
		_, err = q.pool.Exec(ctx, `SELECT pg_notify('mjrelay_queue', $1)`, class)
	}
	return err
}

// Done removes a message for good (delivered, failed or deleted). If the
// database does not answer, the completion is kept and written once it
// does; Done returns nil (as the spool's lazy completion: a crash before
// it is written can only deliver that message again).
func (q *Queue) Done(ctx context.Context, id string) error {
	err := q.dones.do(ctx, id)
	if err != nil && pg.Temporary(err) && q.holds(id) {
		q.keepPending(id, nil)
		err = nil
	}
	q.release(id)
	return err
}

// complete is the group commit of completions: it deletes the rows and
// writes their tombstones; an id not deleted (not queued, or twice in the
// batch) is ErrNotFound.
func (q *Queue) complete(ctx context.Context, ids []string) []error {
	errs := make([]error, len(ids))
	rows, err := q.pool.Query(ctx, `WITH d AS (DELETE FROM mjrelay_queue WHERE id = ANY($1) RETURNING id, size),
		t AS (INSERT INTO mjrelay_queue_done (id) SELECT id FROM d ON CONFLICT DO NOTHING)
		SELECT id, size FROM d`, ids)
	if err == nil {
		gone := map[string]bool{}
		for rows.Next() {
			var id string
			var size int64
			if err = rows.Scan(&id, &size); err != nil {
				break
			}
			gone[id] = true
			q.tot.add(-1, -size)
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
		if err == nil {
			for i, id := range ids {
				if gone[id] {
					errs[i], gone[id] = nil, false // a second Done in the batch: not found
				} else {
					errs[i] = queue.ErrNotFound
				}
			}
			return errs
		}
	}
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// holds reports whether this instance holds the claim on id.
func (q *Queue) holds(id string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.held[id] != nil
}

// release forgets a claim whose attempt ended, and lets the claim loop
// use the capacity.
func (q *Queue) release(id string) {
	q.mu.Lock()
	h, ok := q.held[id]
	delete(q.held, id)
	q.mu.Unlock()
	if ok {
		q.poke(q.laneOf(h.item.Envelope.Class))
	}
}

// poke wakes the claim loop for the given lanes (none: all): new mail,
// capacity freed, a retry.
func (q *Queue) poke(lanes ...string) {
	q.mu.Lock()
	if q.dirty == nil {
		q.dirty = map[string]bool{}
	}
	if len(lanes) == 0 {
		for _, l := range q.o.Lanes {
			q.dirty[l.Class] = true
		}
	}
	for _, l := range lanes {
		q.dirty[q.laneOf(l)] = true
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}
