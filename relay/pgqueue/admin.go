package pgqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mjrelay/mjrelay/relay/queue"
)

// HeldError says that a live node holds the message (an attempt is under
// way or about to start there): only that node may delete it (AskDelete).
type HeldError struct{ Instance string }

func (e *HeldError) Error() string {
	return fmt.Sprintf("held by node %s, which is delivering it right now", NodeOf(e.Instance))
}

// NodeOf is the node name of an instance id.
func NodeOf(instance string) string {
	for i := len(instance) - 1; i >= 0; i-- {
		if instance[i] == '/' {
			return instance[:i]
		}
	}
	return instance
}

// RetryNow makes a deferred message that nobody holds (or all of them,
// with id "") due now and wakes the claim loops; it returns how many.
func (q *Queue) RetryNow(ctx context.Context, id string) (int, error) {
	where := `id = $1`
	if id == "" {
		where = `$1 = ''`
	}
	tag, err := q.pool.Exec(ctx, `UPDATE mjrelay_queue SET due = now(), next_at = now()
		WHERE `+where+` AND owner IS NULL AND due > now()`, id)
	if err != nil {
		return 0, err
	}
	n := int(tag.RowsAffected())
	if n == 0 && id != "" {
		if _, err := q.Get(id); err != nil {
			return 0, err
		}
	}
	if n > 0 {
		_, err = q.pool.Exec(ctx, `SELECT pg_notify('mjrelay_queue', 'retry')`)
	}
	return n, err
}

// Delete removes a message that no live node holds and returns its
// envelope. A message a live node holds is not touched: the error is a
// *HeldError naming it (this instance included: its scheduler decides).
func (q *Queue) Delete(ctx context.Context, id string) (queue.Envelope, error) {
	var env queue.Envelope
	var j []byte
	err := q.pool.QueryRow(ctx, `WITH d AS (DELETE FROM mjrelay_queue WHERE id = $1 AND (owner IS NULL
			OR owner NOT IN (SELECT instance FROM mjrelay_nodes WHERE heartbeat_at > now() - make_interval(secs => $2))) RETURNING id, envelope, size),
		t AS (INSERT INTO mjrelay_queue_done (id) SELECT id FROM d ON CONFLICT DO NOTHING)
		SELECT envelope FROM d`, id, q.o.Lease.Seconds()).Scan(&j)
	if err == nil {
		err = json.Unmarshal(j, &env)
		q.tot.add(-1, -env.Size)
		return env, err
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return env, err
	}
	var owner *string
	if err := q.pool.QueryRow(ctx, `SELECT owner FROM mjrelay_queue WHERE id = $1`, id).Scan(&owner); errors.Is(err, pgx.ErrNoRows) {
		return env, queue.ErrNotFound
	} else if err != nil {
		return env, err
	}
	if owner == nil {
		return env, fmt.Errorf("pgqueue: %s changed meanwhile: try again", id)
	}
	return env, &HeldError{Instance: *owner}
}

// AskDelete asks the instance that holds id to delete it (its OnDelete).
func (q *Queue) AskDelete(ctx context.Context, instance, id string) error {
	_, err := q.pool.Exec(ctx, `SELECT pg_notify('mjrelay_control', $1)`, "delete "+instance+" "+id)
	return err
}

// Depth is one lane's messages in the cluster: ready, deferred, claimed
// by a node (in flight), and held (waiting for their check, see held.go).
type Depth struct{ Ready, Deferred, InFlight, Held int }

// Depths counts each lane's messages in the whole cluster.
func (q *Queue) Depths(ctx context.Context) (map[string]Depth, error) {
	rows, err := q.pool.Query(ctx, `SELECT class, count(*) FILTER (WHERE owner IS NULL AND due <= now() AND `+notWaiting+`),
		count(*) FILTER (WHERE owner IS NULL AND due > now() AND `+notWaiting+`),
		count(*) FILTER (WHERE owner IS NOT NULL AND `+notWaiting+`), count(*) FILTER (WHERE NOT `+notWaiting+`)
		FROM mjrelay_queue GROUP BY class`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]Depth{}
	for _, l := range q.o.Lanes {
		out[l.Class] = Depth{}
	}
	for rows.Next() {
		var class string
		var d Depth
		if err := rows.Scan(&class, &d.Ready, &d.Deferred, &d.InFlight, &d.Held); err != nil {
			return nil, err
		}
		out[class] = d
	}
	return out, rows.Err()
}

// Node is one node instance as the nodes table has it.
type Node struct {
	Node      string     `json:"node"`
	Instance  string     `json:"instance"`
	Started   time.Time  `json:"started"`
	Heartbeat time.Time  `json:"heartbeat"`
	Stopped   *time.Time `json:"stopped,omitempty"`
	// Alive: its last heartbeat is within the lease.
	Alive bool `json:"alive"`
	// Holds is how many messages it has claimed now.
	Holds int  `json:"holds"`
	Info  Info `json:"info"`
}

// Nodes lists the node instances seen in the last day, the live ones
// first.
func (q *Queue) Nodes(ctx context.Context) ([]Node, error) {
	rows, err := q.pool.Query(ctx, `SELECT n.node, n.instance, n.started_at, n.heartbeat_at, n.stopped_at,
			n.stopped_at IS NULL AND n.heartbeat_at > now() - make_interval(secs => $1),
			(SELECT count(*) FROM mjrelay_queue q WHERE q.owner = n.instance), n.info
		FROM mjrelay_nodes n WHERE n.heartbeat_at > now() - interval '1 day'
		ORDER BY 6 DESC, n.node, n.started_at DESC`, q.o.Lease.Seconds())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Node
	for rows.Next() {
		var n Node
		if err := rows.Scan(&n.Node, &n.Instance, &n.Started, &n.Heartbeat, &n.Stopped, &n.Alive, &n.Holds, &n.Info); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// Moved is a message brought in from elsewhere (a node's local spool, an
// embedded queue) with its state.
type Moved struct {
	Item queue.Item
	Body []byte
}

// Insert queues messages brought in from elsewhere in one transaction,
// with their states; a message already queued, or that already left the
// queue (a tombstone), is skipped. It returns how many it inserted.
func (q *Queue) Insert(ctx context.Context, ms []Moved) (int, error) {
	b := &pgx.Batch{}
	for _, m := range ms {
		env := m.Item.Envelope
		env.Size = int64(len(m.Body))
		j, err := json.Marshal(env)
		if err != nil {
			return 0, err
		}
		st := m.Item.State
		var next *time.Time
		due := env.Received
		if !st.Next.IsZero() {
			next, due = &st.Next, st.Next
		}
		b.Queue(`INSERT INTO mjrelay_queue (id, class, envelope, size, body, attempts, next_at, due, last_error, pending, accepted_by, held, released)
			SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13
			WHERE NOT EXISTS (SELECT 1 FROM mjrelay_queue_done WHERE id = $1)
			ON CONFLICT (id) DO NOTHING`,
			env.ID, q.laneOf(env.Class), j, env.Size, m.Body, st.Attempts, next, due, st.LastError, st.Pending, q.o.Node,
			env.Hold != "", st.Released)
	}
	b.Queue(`SELECT pg_notify('mjrelay_queue', 'moved')`)
	tx, err := q.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx)
	br := tx.SendBatch(ctx, b)
	n := 0
	for range ms {
		tag, err := br.Exec()
		if err != nil {
			br.Close()
			return 0, err
		}
		n += int(tag.RowsAffected())
	}
	if _, err := br.Exec(); err != nil {
		br.Close()
		return 0, err
	}
	if err := br.Close(); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	return n, nil
}

// Prune removes the tombstones and the node rows older than keep (a
// periodic job of one node in the cluster).
func (q *Queue) Prune(ctx context.Context, keep time.Duration) error {
	_, err := q.pool.Exec(ctx, `DELETE FROM mjrelay_queue_done WHERE done_at < now() - make_interval(secs => $1)`, keep.Seconds())
	if err == nil {
		_, err = q.pool.Exec(ctx, `DELETE FROM mjrelay_nodes WHERE heartbeat_at < now() - make_interval(secs => $1)`, keep.Seconds())
	}
	return err
}
