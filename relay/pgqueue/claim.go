package pgqueue

import (
	"context"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mjrelay/mjrelay/relay/queue"
)

// Subscribe makes fn see the messages this node is to deliver: at once
// those it holds and the deferred ones that nobody holds (the scheduler's
// timer heap keeps them, see Deliverer), then each message it claims. The
// first subscriber starts the claim loop.
func (q *Queue) Subscribe(fn func(queue.Item)) {
	if q.o.Admin || q.closed.Load() {
		return
	}
	q.mu.Lock()
	q.subs = append(q.subs, fn)
	start := !q.claiming
	q.claiming = true
	var mine []queue.Item
	for _, h := range q.held {
		mine = append(mine, h.item)
	}
	q.mu.Unlock()
	for _, it := range mine {
		fn(it)
	}
	for _, it := range q.deferred() {
		fn(it)
	}
	if start {
		q.wg.Add(1)
		go q.claimLoop()
	}
	q.poke()
}

// deferred lists the messages nobody holds that are due later.
func (q *Queue) deferred() []queue.Item {
	return q.items("reading the deferred messages", `WHERE owner IS NULL AND due > now()`)
}

// claimLoop claims what the lanes have room for whenever woken (new mail
// anywhere in the cluster, a completion here), at the earliest due time,
// and every lease/4 for the claims of dead nodes.
func (q *Queue) claimLoop() {
	defer q.wg.Done()
	timer := time.NewTimer(0)
	defer timer.Stop()
	nextDue := map[string]time.Time{} // per lane, as last read
	for {
		select {
		case <-q.ctx.Done():
			return
		case <-q.wake:
		case <-timer.C:
			q.poke() // every lane: due times, lapsed claims
			<-q.wake
		}
		wait := q.claimAll(nextDue)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// claimAll claims in each lane that has something new, in order, and
// returns how long to sleep at most: until the earliest due time of any
// lane (nextDue keeps them), or a quarter of the lease.
func (q *Queue) claimAll(nextDue map[string]time.Time) time.Duration {
	wait := max(q.o.Lease/4, 50*time.Millisecond)
	if !q.up.Load() || !q.leaseValid() {
		return q.beatEvery()
	}
	reap := q.mayReap()
	if err := q.feedHeld(q.ctx); err != nil && q.ctx.Err() == nil {
		q.log.Warn("reading the held messages", "err", err)
	}
	q.mu.Lock()
	dirty := q.dirty
	q.dirty = nil
	q.mu.Unlock()
	for _, l := range q.o.Lanes {
		if !dirty[l.Class] {
			continue
		}
		items, next, err := q.claimLane(q.ctx, l, reap, "")
		if err != nil {
			if q.ctx.Err() == nil {
				q.log.Warn("claiming messages", "lane", l.Class, "err", err)
			}
			q.poke()
			<-q.wake // not at once: after the wait
			return q.beatEvery()
		}
		q.mu.Lock()
		fns := q.subs
		q.mu.Unlock()
		for _, h := range items {
			for _, fn := range fns {
				fn(h.item)
			}
		}
		nextDue[l.Class] = next
	}
	for _, l := range q.o.Lanes {
		switch next := nextDue[l.Class]; {
		case next.IsZero():
		case next.After(time.Now()):
			wait = min(wait, max(time.Until(next), time.Millisecond))
		case l.Rate > 0:
			// Due mail waits for a token: one comes back in 1/rate s.
			// (Mail that waits for capacity is claimed when a completion
			// here pokes the loop, or at the tick.)
			wait = min(wait, time.Duration(float64(time.Second)/l.Rate))
		}
	}
	return wait
}

// laneKey is the advisory lock that serialises one lane's claims.
func laneKey(class string) int64 {
	h := fnv.New64a()
	h.Write([]byte("mjrelay lane " + class))
	return int64(h.Sum64())
}

const reapSQL = `UPDATE mjrelay_queue SET owner = NULL WHERE class = $1 AND owner IS NOT NULL
	AND owner NOT IN (SELECT instance FROM mjrelay_nodes WHERE heartbeat_at > now() - make_interval(secs => $2))`

// claimSQL claims up to the lane's free capacity ($2 minus the claims of
// live nodes) and, with a rate ($4 per second, burst $5), the tokens of
// its bucket, oldest due first; %s narrows the candidates.
const claimSQL = `WITH live AS (SELECT instance FROM mjrelay_nodes WHERE heartbeat_at > now() - make_interval(secs => $3)),
busy AS (SELECT count(*) AS n FROM mjrelay_queue WHERE class = $1 AND owner IN (SELECT instance FROM live) AND ` + notWaiting + `),
bucket AS (SELECT coalesce((SELECT least($5::float8, tokens + extract(epoch FROM now() - at) * $4::float8)
	FROM mjrelay_lanes WHERE class = $1), $5::float8) AS tokens),
pick AS (SELECT id FROM mjrelay_queue WHERE class = $1 AND owner IS NULL AND due <= now() AND ` + notWaiting + ` %s
	ORDER BY due, id
	LIMIT greatest(0, least($2::bigint - (SELECT n FROM busy),
		CASE WHEN $4::float8 > 0 THEN floor((SELECT tokens FROM bucket))::bigint ELSE $2::bigint END))
	FOR UPDATE SKIP LOCKED),
claimed AS (UPDATE mjrelay_queue q SET owner = $6 FROM pick WHERE q.id = pick.id
	RETURNING q.envelope, q.attempts, q.next_at, q.last_error, q.pending, q.released, q.body),
spent AS (INSERT INTO mjrelay_lanes (class, tokens, at)
	SELECT $1, (SELECT tokens FROM bucket) - (SELECT count(*) FROM claimed), now() WHERE $4::float8 > 0
	ON CONFLICT (class) DO UPDATE SET tokens = excluded.tokens, at = excluded.at)
SELECT * FROM claimed`

// claimLane claims messages of lane l (only id, if set) in one round
// trip: the lane's lock, the reaping of lapsed claims, the claim, and the
// earliest due time of what is left unclaimed (in the past: due mail that
// waits for capacity or a token). The claims are held on return.
func (q *Queue) claimLane(ctx context.Context, l Lane, reap bool, id string) ([]*held, time.Time, error) {
	lease := q.o.Lease.Seconds()
	b := &pgx.Batch{}
	b.Queue(`SELECT pg_advisory_xact_lock($1)`, laneKey(l.Class))
	if reap {
		b.Queue(reapSQL, l.Class, lease)
	}
	burst := max(1, l.Rate)
	if id == "" {
		b.Queue(fmt.Sprintf(claimSQL, ""), l.Class, l.Concurrency, lease, l.Rate, burst, q.instance)
		b.Queue(`SELECT min(due) FROM mjrelay_queue WHERE class = $1 AND owner IS NULL AND `+notWaiting, l.Class)
	} else {
		b.Queue(fmt.Sprintf(claimSQL, "AND id = $7"), l.Class, l.Concurrency, lease, l.Rate, burst, q.instance, id)
	}
	br := q.pool.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, time.Time{}, err
	}
	if reap {
		tag, err := br.Exec()
		if err != nil {
			return nil, time.Time{}, err
		}
		if n := tag.RowsAffected(); n > 0 {
			q.log.Info("claims of a node whose lease ended are taken over", "lane", l.Class, "messages", n)
		}
	}
	rows, err := br.Query()
	if err != nil {
		return nil, time.Time{}, err
	}
	var got []*held
	for rows.Next() {
		h := &held{}
		var it queue.Item
		if it, err = scanItem(rows, &h.body); err != nil {
			rows.Close()
			return nil, time.Time{}, err
		}
		h.item = it
		got = append(got, h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, time.Time{}, err
	}
	var next *time.Time
	if id == "" {
		if err := br.QueryRow().Scan(&next); err != nil {
			return nil, time.Time{}, err
		}
	}
	if err := br.Close(); err != nil {
		return nil, time.Time{}, err
	}
	q.mu.Lock()
	for _, h := range got {
		q.held[h.item.Envelope.ID] = h
	}
	q.mu.Unlock()
	if next == nil {
		return got, time.Time{}, nil
	}
	return got, *next, nil
}

// Deliverer is the queue as this node's scheduler sees it: Get hands out
// only what this node may attempt now — a message it claimed, a deferred
// one that is due and that it claims on the spot within its lane's
// capacity, or a held one it claims for its check (held.go) — so that a timer firing here never attempts a message
// another node holds. Nothing is handed out once this node's lease may
// have run out.
type Deliverer struct{ q *Queue }

// Deliverer returns the scheduler's view of q.
func (q *Queue) Deliverer() Deliverer { return Deliverer{q} }

// Get returns a message this node may attempt now, or ErrNotFound.
func (d Deliverer) Get(id string) (queue.Item, error) {
	q := d.q
	if !q.leaseValid() {
		// Not attempted now: the claim is given back after the next
		// heartbeat, and the message claimed again.
		q.mu.Lock()
		if q.held[id] != nil {
			delete(q.held, id)
			q.dropped = append(q.dropped, id)
		}
		q.mu.Unlock()
		return queue.Item{}, queue.ErrNotFound
	}
	q.mu.Lock()
	h := q.held[id]
	q.mu.Unlock()
	if h != nil {
		return h.item, nil
	}
	it, err := q.Get(id)
	if err != nil {
		return queue.Item{}, queue.ErrNotFound
	}
	if it.Held() != "" {
		return q.claimHeld(q.ctxOrBackground(), id)
	}
	got, _, err := q.claimLane(q.ctxOrBackground(), q.lane(it.Envelope.Class), false, id)
	if err != nil || len(got) == 0 {
		return queue.Item{}, queue.ErrNotFound
	}
	return got[0].item, nil
}

// Body returns the message's bytes (those of a claim are in hand).
func (d Deliverer) Body(id string) ([]byte, error) { return d.q.Body(id) }

// SetState records the attempt's outcome and gives the claim back.
func (d Deliverer) SetState(ctx context.Context, st queue.State) error { return d.q.SetState(ctx, st) }

// Done removes the message for good.
func (d Deliverer) Done(ctx context.Context, id string) error { return d.q.Done(ctx, id) }

func (q *Queue) lane(class string) Lane {
	c := q.laneOf(class)
	for _, l := range q.o.Lanes {
		if l.Class == c {
			return l
		}
	}
	return q.o.Lanes[0]
}
