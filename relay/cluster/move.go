package cluster

import (
	"context"
	"time"

	"github.com/mjrelay/mjrelay/relay/pgqueue"
)

// moveEvery is how often the mover checks the database while mail is
// held locally.
const moveEvery = 500 * time.Millisecond

// mover watches for the database to answer again while the node is
// degraded or holds mail locally, then moves the held mail in.
func (q *Queue) mover() {
	defer q.wg.Done()
	t := time.NewTicker(moveEvery)
	defer t.Stop()
	for {
		select {
		case <-q.ctx.Done():
			return
		case <-t.C:
		}
		if !q.degraded.Load() && q.local.Stats().Messages == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(q.ctx, 2*time.Second)
		_, err := q.pool.Exec(ctx, `SELECT 1`)
		cancel()
		if err != nil {
			continue
		}
		if q.degraded.Swap(false) {
			q.log.Info("PostgreSQL reachable again: new mail goes to the cluster's queue", "degraded_for", time.Since(time.Unix(0, q.since.Load())).Round(time.Millisecond))
		}
		if n, err := q.move(q.ctx); err != nil {
			q.log.Warn("moving locally held mail into PostgreSQL", "moved", n, "err", err)
		} else if n > 0 {
			q.log.Info("locally held mail moved into PostgreSQL", "messages", n, "still_held", q.local.Stats().Messages)
		}
	}
}

// move moves the locally held messages that no attempt is delivering
// into the cluster's queue, in batches; it returns how many.
func (q *Queue) move(ctx context.Context) (int, error) {
	items := q.local.List()
	moved := 0
	for len(items) > 0 {
		chunk := items[:min(len(items), 64)]
		items = items[len(chunk):]
		var batch []pgqueue.Moved
		q.mu.Lock()
		for _, it := range chunk {
			id := it.Envelope.ID
			if q.inflight[id] || q.moving[id] {
				continue // its attempt ends first; the next pass takes it
			}
			q.moving[id] = true
			batch = append(batch, pgqueue.Moved{Item: it})
		}
		q.mu.Unlock()
		// Marked as moving, none can start; one done meanwhile is gone.
		kept := batch[:0]
		for _, m := range batch {
			it, err := q.local.Get(m.Item.Envelope.ID)
			b, berr := q.local.Body(m.Item.Envelope.ID)
			if err != nil || berr != nil {
				q.mu.Lock()
				delete(q.moving, m.Item.Envelope.ID)
				q.mu.Unlock()
				continue
			}
			m.Item, m.Body = it, b // as it is now, not as listed
			kept = append(kept, m)
		}
		batch = kept
		_, err := q.pg.Insert(ctx, batch)
		for _, m := range batch {
			id := m.Item.Envelope.ID
			if err == nil {
				if derr := q.local.Done(ctx, id); derr == nil {
					moved++
				}
			}
			q.mu.Lock()
			delete(q.moving, id)
			if err == nil {
				delete(q.doubt, id)
			}
			q.mu.Unlock()
		}
		if err != nil {
			return moved, err
		}
	}
	return moved, nil
}
