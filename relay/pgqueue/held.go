package pgqueue

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mjrelay/mjrelay/relay/queue"
)

// Held mail in the cluster. A message accepted while its sender could not
// be checked (queue.Envelope.Hold, the Mailjet account state unknown) is
// in the database like any other, marked held, and no lane claims it
// until its check has passed (State.Released): it takes no lane capacity
// while it waits. Every node's scheduler sees it (the claim loop feeds it
// the held messages nobody holds, once each), so every node lists and
// counts it, and whichever node can run the check runs it: the
// scheduler's Get takes a short claim on it for the check, outside the
// lanes' capacity, so that two nodes never decide on the same message
// (a refusal is reported to Odoo once); the check's outcome ends the
// claim — released (SetState: then claimed in its lane as any message,
// by whichever node has room), refused or expired (Done) — or, when the
// check cannot run on this node, Unclaim gives it back at once for the
// other nodes.

// notWaiting is the SQL condition of a message that is not held waiting
// for its check.
const notWaiting = `NOT (held AND NOT released)`

// feedHeld hands the subscribers each held message that nobody holds and
// that this node has not fed them yet, and forgets those no longer held.
func (q *Queue) feedHeld(ctx context.Context) error {
	rows, err := q.pool.Query(ctx, `SELECT id, owner IS NULL FROM mjrelay_queue WHERE held AND NOT released`)
	if err != nil {
		return err
	}
	waiting := map[string]bool{}
	var fresh []string
	q.mu.Lock()
	for rows.Next() {
		var id string
		var free bool
		if err := rows.Scan(&id, &free); err != nil {
			q.mu.Unlock()
			rows.Close()
			return err
		}
		waiting[id] = true
		if free && !q.fedHeld[id] {
			fresh = append(fresh, id)
		}
	}
	for id := range q.fedHeld {
		if !waiting[id] {
			delete(q.fedHeld, id)
		}
	}
	q.mu.Unlock()
	rows.Close()
	if err := rows.Err(); err != nil || len(fresh) == 0 {
		return err
	}
	items, err := q.query(ctx, `WHERE id = ANY($1) AND held AND NOT released`, fresh)
	if err != nil {
		return err
	}
	q.mu.Lock()
	fns := q.subs
	for _, it := range items {
		q.fedHeld[it.Envelope.ID] = true
	}
	q.mu.Unlock()
	for _, it := range items {
		for _, fn := range fns {
			fn(it)
		}
	}
	return nil
}

// claimHeld takes the claim on a held message for its check, outside the
// lanes' capacity; ErrNotFound if another node holds it (its scheduler
// forgets it: it is fed again if that node gives it back).
func (q *Queue) claimHeld(ctx context.Context, id string) (queue.Item, error) {
	h := &held{}
	it, err := scanItem(q.pool.QueryRow(ctx, `UPDATE mjrelay_queue SET owner = $2
		WHERE id = $1 AND owner IS NULL AND held AND NOT released RETURNING `+itemCols+`, body`, id, q.instance), &h.body)
	if err != nil {
		q.mu.Lock()
		delete(q.fedHeld, id)
		q.mu.Unlock()
		if !errors.Is(err, pgx.ErrNoRows) {
			q.log.Warn("claiming a held message for its check", "id", id, "err", err)
		}
		return queue.Item{}, queue.ErrNotFound
	}
	h.item = it
	q.mu.Lock()
	q.held[id] = h
	q.mu.Unlock()
	return it, nil
}

// Unclaim gives back the claim on a held message whose check cannot run
// on this node now, and wakes the other nodes: one that can run it takes
// it (this node's scheduler tries again at its next round).
func (d Deliverer) Unclaim(ctx context.Context, id string) {
	q := d.q
	if !q.holds(id) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := q.pool.Exec(ctx, `WITH u AS (UPDATE mjrelay_queue SET owner = NULL WHERE id = $1 AND owner = $2 RETURNING class)
		SELECT pg_notify('mjrelay_queue', class) FROM u`, id, q.instance)
	if err != nil {
		// Kept: the claim ends with this node's lease at the latest.
		q.log.Warn("giving back a held message", "id", id, "err", err)
		return
	}
	q.mu.Lock()
	delete(q.held, id)
	q.mu.Unlock()
}
