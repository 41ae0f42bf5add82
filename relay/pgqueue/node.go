package pgqueue

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mjrelay/mjrelay/relay/queue"
)

// beatEvery is the heartbeat's period: a fifth of the lease, so that a
// few lost beats do not cost a live node its claims.
func (q *Queue) beatEvery() time.Duration { return max(q.o.Lease/5, 50*time.Millisecond) }

// Info is what a node reports about itself with each heartbeat; Report
// sets the function that gives it (the wiring: HTTP address, messages
// held locally...).
type Info map[string]any

// Report sets what the heartbeat reports about this node.
func (q *Queue) Report(fn func() Info) { q.mu.Lock(); q.report = fn; q.mu.Unlock() }

// beat renews this instance's lease (and so every claim it holds).
func (q *Queue) beat(ctx context.Context) error {
	q.mu.Lock()
	fn := q.report
	q.mu.Unlock()
	info := Info{}
	if fn != nil {
		info = fn()
	}
	j, _ := json.Marshal(info)
	sent := time.Now()
	ctx, cancel := context.WithTimeout(ctx, max(q.o.Lease/3, time.Second))
	defer cancel()
	_, err := q.pool.Exec(ctx, `INSERT INTO mjrelay_nodes (instance, node, info) VALUES ($1, $2, $3)
		ON CONFLICT (instance) DO UPDATE SET heartbeat_at = now(), info = excluded.info, stopped_at = NULL`,
		q.instance, q.o.Node, j)
	if err == nil {
		q.lastBeat.Store(sent.UnixNano())
	}
	return err
}

// heartbeat renews the lease every beatEvery; it notices the database
// going away and coming back: on the way back it writes the outcomes kept
// meanwhile, gives back the claims it no longer has in hand, and wakes the
// claim loop.
func (q *Queue) heartbeat() {
	defer q.wg.Done()
	q.up.Store(true)
	t := time.NewTicker(q.beatEvery())
	defer t.Stop()
	refreshed := time.Now()
	for {
		select {
		case <-q.ctx.Done():
			return
		case <-t.C:
		}
		err := q.beat(q.ctx)
		switch {
		case err != nil && q.ctx.Err() == nil:
			if q.up.Swap(false) {
				q.log.Warn("PostgreSQL unreachable: claims held until the lease ends", "lease", q.o.Lease, "err", err)
			}
			continue
		case err != nil:
			return
		}
		if !q.up.Load() {
			q.connectedSince.Store(time.Now().UnixNano())
			q.flushPending(q.ctx)
			q.giveBackIdle(q.ctx)
			q.up.Store(true)
			q.log.Info("PostgreSQL reachable again")
			q.poke()
		} else if q.hasPending() {
			q.flushPending(q.ctx)
		}
		q.giveBackDropped(q.ctx)
		if time.Since(refreshed) > time.Second {
			q.tot.refresh(q.ctx, q.pool)
			refreshed = time.Now()
		}
	}
}

// Up reports whether the last heartbeat reached the database.
func (q *Queue) Up() bool { return q.up.Load() }

// leaseValid reports whether this node's claims are still surely its own:
// its last heartbeat is recent enough that no other node may have taken
// them (a margin of a fifth of the lease for clocks and delays).
func (q *Queue) leaseValid() bool {
	last := time.Unix(0, q.lastBeat.Load())
	return time.Since(last) < q.o.Lease-q.o.Lease/5
}

// mayReap reports whether this node may clear other nodes' lapsed
// claims: only once connected for a whole lease, so that after an outage
// of the database every surviving node has beaten again first.
func (q *Queue) mayReap() bool {
	return q.up.Load() && time.Since(time.Unix(0, q.connectedSince.Load())) >= q.o.Lease
}

// keepPending keeps an outcome the database did not take (st nil: Done).
func (q *Queue) keepPending(id string, st *queue.State) {
	q.mu.Lock()
	q.pending[id] = st
	q.mu.Unlock()
}

func (q *Queue) hasPending() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending) > 0
}

// flushPending writes the kept outcomes.
func (q *Queue) flushPending(ctx context.Context) {
	q.mu.Lock()
	todo := q.pending
	q.pending = map[string]*queue.State{}
	q.mu.Unlock()
	for id, st := range todo {
		var err error
		if st == nil {
			err = q.dones.do(ctx, id)
		} else {
			err = q.writeState(ctx, *st)
		}
		if err != nil && err != queue.ErrNotFound {
			q.keepPending(id, st)
		}
	}
	if n := len(todo); n > 0 {
		q.log.Info("outcomes kept while PostgreSQL was unreachable are written", "outcomes", n)
	}
}

// giveBackIdle gives back the claims this instance has in the database
// but not in hand (dropped while its lease was in doubt), and those whose
// outcome is written.
func (q *Queue) giveBackIdle(ctx context.Context) {
	q.mu.Lock()
	q.dropped = nil // given back here too
	keep := make([]string, 0, len(q.held)+len(q.pending))
	for id := range q.held {
		keep = append(keep, id)
	}
	for id := range q.pending {
		keep = append(keep, id)
	}
	q.mu.Unlock()
	q.pool.Exec(ctx, `UPDATE mjrelay_queue SET owner = NULL WHERE owner = $1 AND NOT (id = ANY($2))`, q.instance, keep)
}

// giveBackDropped gives back the claims the scheduler was refused while
// the lease was in doubt (a late heartbeat), so that they are claimed
// again. Nobody can claim them meanwhile: they are this node's until
// given back (or until its lease ends, when "owner = $1" spares them).
func (q *Queue) giveBackDropped(ctx context.Context) {
	q.mu.Lock()
	ids := q.dropped
	q.dropped = nil
	q.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	if _, err := q.pool.Exec(ctx, `UPDATE mjrelay_queue SET owner = NULL WHERE owner = $1 AND id = ANY($2)`, q.instance, ids); err != nil {
		q.mu.Lock()
		q.dropped = append(q.dropped, ids...)
		q.mu.Unlock()
		return
	}
	q.poke()
}

// listen waits for notifications on a connection of its own: new mail
// (mjrelay_queue) wakes the claim loop; a delete request for a message
// this node holds (mjrelay_control) goes to OnDelete. A lost connection
// is made again, and the claim loop runs then in case a notification was
// missed.
func (q *Queue) listen() {
	defer q.wg.Done()
	for q.ctx.Err() == nil {
		q.listenOnce()
		select {
		case <-q.ctx.Done():
			return
		case <-time.After(q.beatEvery()):
		}
	}
}

func (q *Queue) listenOnce() {
	conn, err := q.pool.Acquire(q.ctx)
	if err != nil {
		return
	}
	defer conn.Release()
	if _, err := conn.Exec(q.ctx, `LISTEN mjrelay_queue; LISTEN mjrelay_control`); err != nil {
		conn.Conn().Close(context.Background())
		return
	}
	q.poke()
	for {
		n, err := conn.Conn().WaitForNotification(q.ctx)
		if err != nil {
			// The connection is not reused: it may still be listening.
			conn.Conn().Close(context.Background())
			return
		}
		switch n.Channel {
		case "mjrelay_queue":
			// The payload names the lanes with new mail; anything else
			// (a release, a retry, a move) concerns them all.
			var lanes []string
			for _, c := range strings.Split(n.Payload, ",") {
				if q.laneOf(c) != c {
					lanes = nil
					break
				}
				lanes = append(lanes, c)
			}
			q.poke(lanes...)
		case "mjrelay_control":
			op, instance, id := parseControl(n.Payload)
			if op == "delete" && instance == q.instance {
				q.mu.Lock()
				fn := q.onDelete
				q.mu.Unlock()
				if fn != nil {
					go fn(id)
				}
			}
		}
	}
}

// parseControl reads "op instance id" (the id may hold spaces).
func parseControl(p string) (op, instance, id string) {
	parts := strings.SplitN(p, " ", 3)
	if len(parts) != 3 {
		return "", "", ""
	}
	return parts[0], parts[1], parts[2]
}

// totals are the cluster's message count and bytes as last read, plus
// this node's puts and completions since, for Admit; reserved counts the
// puts under way.
type totals struct {
	mu            sync.Mutex
	msgs, delta   int
	bytes, dbytes int64
	resMsgs       int
	resBytes      int64
}

func (t *totals) refresh(ctx context.Context, pool *pgxpool.Pool) error {
	t.mu.Lock()
	d, db := t.delta, t.dbytes
	t.mu.Unlock()
	var m int
	var b int64
	if err := pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(size), 0) FROM mjrelay_queue`).Scan(&m, &b); err != nil {
		return err
	}
	t.mu.Lock()
	t.msgs, t.bytes = m, b
	t.delta, t.dbytes = t.delta-d, t.dbytes-db
	t.mu.Unlock()
	return nil
}

func (t *totals) now() (int, int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.msgs + t.delta, t.bytes + t.dbytes
}

func (t *totals) add(msgs int, bytes int64) {
	t.mu.Lock()
	t.delta += msgs
	t.dbytes += bytes
	t.mu.Unlock()
}

// admit checks the limits for a message of size bytes and, with reserve,
// counts it as under way until unreserve.
func (t *totals) admit(o Options, size int64, reserve bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if o.MaxMessages > 0 && t.msgs+t.delta+t.resMsgs >= o.MaxMessages {
		return queue.ErrFull
	}
	if o.MaxBytes > 0 && t.bytes+t.dbytes+t.resBytes+size > o.MaxBytes {
		return queue.ErrFull
	}
	if reserve {
		t.resMsgs++
		t.resBytes += size
	}
	return nil
}

func (t *totals) unreserve(size int64) {
	t.mu.Lock()
	t.resMsgs--
	t.resBytes -= size
	t.mu.Unlock()
}
