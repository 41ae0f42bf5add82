// Package pgfeedback is the Odoo feedback outbox (feedback.Outbox) of a
// cluster, in PostgreSQL: the webhook of any node adds the reports, the
// reporter of any node claims them (a lease per item, FOR UPDATE SKIP
// LOCKED, so two nodes never send one report at once), and a node that
// dies leaves its claims to the others when their leases end. It passes
// feedbacktest, as the embedded journal does.
package pgfeedback

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mjrelay/mjrelay/relay/feedback"
	"github.com/mjrelay/mjrelay/relay/pg"
)

// Component is the outbox's name in relay/pg's migrations.
const Component = "feedback"

// The outbox is one table: a pending item has finished_at NULL; a finished
// one keeps only its key (item emptied) until Forget. The item is JSON in
// a text column (jsonb refuses the NUL a reason may quote).
var migrations = []pg.Migration{{Version: 1, Name: "Odoo feedback outbox", SQL: `
CREATE TABLE feedback_outbox (
	key         text PRIMARY KEY,
	item        text NOT NULL,
	added       timestamptz NOT NULL,
	attempts    integer NOT NULL DEFAULT 0,
	next_at     timestamptz,
	last_error  text NOT NULL DEFAULT '',
	lease_until timestamptz,
	finished_at timestamptz,
	outcome     text NOT NULL DEFAULT '',
	answer      text NOT NULL DEFAULT ''
);
CREATE INDEX feedback_outbox_pending ON feedback_outbox (added, key) WHERE finished_at IS NULL;
CREATE INDEX feedback_outbox_finished ON feedback_outbox (finished_at) WHERE finished_at IS NOT NULL`}}

// Outbox is the cluster's outbox over a pool it does not own.
type Outbox struct {
	db     *pgxpool.Pool
	schema *pg.Schema
}

var _ feedback.Outbox = (*Outbox)(nil)

// New applies the schema (if the database does not answer, as soon as it
// does) and returns the outbox over pool.
func New(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) (*Outbox, error) {
	schema, err := pg.NewSchema(ctx, pool, Component, migrations, log)
	if err != nil {
		return nil, err
	}
	return &Outbox{db: pool, schema: schema}, nil
}

// Add stores the items whose keys are new, in one committed statement
// (durable as the database's synchronous_commit makes commits), and
// returns them.
func (o *Outbox) Add(ctx context.Context, items []feedback.Item) ([]feedback.Item, error) {
	if len(items) == 0 {
		return nil, nil
	}
	if err := o.schema.Ready(ctx); err != nil {
		return nil, err
	}
	keys, data := make([]string, 0, len(items)), make([]string, 0, len(items))
	for _, it := range items {
		b, err := json.Marshal(it)
		if err != nil {
			return nil, err
		}
		keys, data = append(keys, it.Key), append(data, string(b))
	}
	rows, err := o.db.Query(ctx, `INSERT INTO feedback_outbox (key, item, added)
		SELECT k, i, $3 FROM unnest($1::text[], $2::text[]) AS u(k, i)
		ON CONFLICT (key) DO NOTHING RETURNING key`, keys, data, time.Now())
	if err != nil {
		return nil, err
	}
	added, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	var out []feedback.Item
	for _, it := range items {
		if i := slices.Index(added, it.Key); i >= 0 {
			out, added[i] = append(out, it), "" // an item twice in items is added once
		}
	}
	return out, nil
}

// pendingColumns are what an Entry is read from.
const pendingColumns = `item, added, attempts, next_at, last_error`

func scanEntries(rows pgx.Rows) ([]feedback.Entry, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (feedback.Entry, error) {
		var e feedback.Entry
		var item string
		var next *time.Time
		if err := row.Scan(&item, &e.State.Added, &e.State.Attempts, &next, &e.State.LastError); err != nil {
			return e, err
		}
		if next != nil {
			e.State.Next = *next
		}
		return e, json.Unmarshal([]byte(item), &e.Item)
	})
}

// Claim leases up to max due items until now+lease, oldest first; items
// another claimer holds locked at this instant are skipped.
func (o *Outbox) Claim(ctx context.Context, now time.Time, max int, lease time.Duration) ([]feedback.Entry, error) {
	rows, err := o.db.Query(ctx, `WITH due AS (
			SELECT key FROM feedback_outbox
			WHERE finished_at IS NULL AND coalesce(next_at, '-infinity') <= $1 AND coalesce(lease_until, '-infinity') <= $1
			ORDER BY added, key LIMIT $2 FOR UPDATE SKIP LOCKED)
		UPDATE feedback_outbox f SET lease_until = $3 FROM due WHERE f.key = due.key
		RETURNING `+pendingColumns, now, max, now.Add(lease))
	if err != nil {
		return nil, err
	}
	es, err := scanEntries(rows)
	sortEntries(es)
	return es, err
}

// sortEntries orders entries oldest first (RETURNING keeps no order).
func sortEntries(es []feedback.Entry) {
	slices.SortFunc(es, func(a, b feedback.Entry) int {
		if c := a.State.Added.Compare(b.State.Added); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
}

// Retry records a failed attempt and ends the lease; the item keeps the
// time it was added.
func (o *Outbox) Retry(ctx context.Context, key string, st feedback.State) error {
	var next *time.Time
	if !st.Next.IsZero() {
		next = &st.Next
	}
	return o.one(ctx, `UPDATE feedback_outbox SET attempts = $2, next_at = $3, last_error = $4, lease_until = NULL
		WHERE key = $1 AND finished_at IS NULL`, key, st.Attempts, next, st.LastError)
}

// Finish records an item's end; its key stays until Forget.
func (o *Outbox) Finish(ctx context.Context, key string, r feedback.Result) error {
	at := r.At
	if at.IsZero() {
		at = time.Now()
	}
	return o.one(ctx, `UPDATE feedback_outbox SET finished_at = $2, outcome = $3, answer = $4, item = '', lease_until = NULL
		WHERE key = $1 AND finished_at IS NULL`, key, at, string(r.Outcome), r.Answer)
}

// one runs an update of the pending item key (feedback.ErrNotFound when
// there is none).
func (o *Outbox) one(ctx context.Context, sql string, args ...any) error {
	tag, err := o.db.Exec(ctx, sql, args...)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return feedback.ErrNotFound
	}
	return nil
}

// Forget drops the keys finished before t.
func (o *Outbox) Forget(ctx context.Context, before time.Time) (int, error) {
	tag, err := o.db.Exec(ctx, `DELETE FROM feedback_outbox WHERE finished_at < $1`, before)
	return int(tag.RowsAffected()), err
}

// List returns up to max pending items, oldest first.
func (o *Outbox) List(ctx context.Context, max int) ([]feedback.Entry, error) {
	rows, err := o.db.Query(ctx, `SELECT `+pendingColumns+` FROM feedback_outbox
		WHERE finished_at IS NULL ORDER BY added, key LIMIT $1`, max)
	if err != nil {
		return nil, err
	}
	return scanEntries(rows)
}

// Stats counts the pending items and the remembered keys.
func (o *Outbox) Stats(ctx context.Context) (feedback.Stats, error) {
	var st feedback.Stats
	var oldest *time.Time
	err := o.db.QueryRow(ctx, `SELECT count(*) FILTER (WHERE finished_at IS NULL),
		min(added) FILTER (WHERE finished_at IS NULL), count(*) FILTER (WHERE finished_at IS NOT NULL)
		FROM feedback_outbox`).Scan(&st.Pending, &oldest, &st.Remembered)
	if oldest != nil {
		st.Oldest = *oldest
	}
	return st, err
}

// Close does nothing: the pool is the relay's.
func (o *Outbox) Close() error { return nil }
