package inspect

import (
	"context"
	"database/sql"
	"errors"

	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// The feedback table keeps, per message, what the Odoo feedback needs and
// did: the one-click unsubscribe URL the message carried, and the counts of
// its reports by state, from which state (store.Summary.Feedback) follows.
// It is added to a store of the current schema version without a rebuild.
var additive = []string{
	`CREATE TABLE IF NOT EXISTS feedback (
		key         INTEGER PRIMARY KEY,
		unsubscribe TEXT NOT NULL DEFAULT '',
		pending     INTEGER NOT NULL DEFAULT 0,
		reported    INTEGER NOT NULL DEFAULT 0,
		failed      INTEGER NOT NULL DEFAULT 0,
		alerts      INTEGER NOT NULL DEFAULT 0,
		state       TEXT NOT NULL DEFAULT ''
	)`,
	`CREATE INDEX IF NOT EXISTS feedback_state ON feedback(state, key) WHERE state != ''`,
}

func addTables(db *sql.DB) error {
	for _, q := range additive {
		if _, err := db.Exec(q); err != nil {
			return err
		}
	}
	return nil
}

const (
	feedbackURL = `INSERT INTO feedback (key, unsubscribe) VALUES (?, ?)
		ON CONFLICT(key) DO UPDATE SET unsubscribe = excluded.unsubscribe`
	feedbackCounts = `SELECT pending, reported, failed, alerts FROM feedback WHERE key = ?`
	feedbackNote   = `INSERT INTO feedback (key, pending, reported, failed, alerts, state) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT(key) DO UPDATE SET pending = excluded.pending, reported = excluded.reported,
		failed = excluded.failed, alerts = excluded.alerts, state = excluded.state`
)

// applyFeedback records a report to Odoo on its message.
func (w *writer) applyFeedback(e *trafficlog.Event) error {
	m, err := w.load("byID", e.ID)
	if err != nil || m == nil {
		return err // a message the store does not know: nothing to attach it to
	}
	var c store.FeedbackCounts
	err = w.st["feedbackCounts"].QueryRowContext(w.ctx, m.Key).Scan(&c.Pending, &c.Reported, &c.Failed, &c.Alerts)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	ev, changed := m.ApplyFeedback(e, &c, w.stats)
	if changed {
		if _, err := w.st["feedbackNote"].ExecContext(w.ctx, m.Key, c.Pending, c.Reported, c.Failed, c.Alerts, c.State()); err != nil {
			return err
		}
	}
	return w.event(m.Key, ev)
}

// feedbackOf fills a message's feedback state and unsubscribe URL.
func (s *Store) feedbackOf(ctx context.Context, key int64, m *store.Message) error {
	err := s.rdb.QueryRowContext(ctx, `SELECT state, unsubscribe FROM feedback WHERE key = ?`, key).Scan(&m.Feedback, &m.Unsubscribe)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	return err
}

// feedbackFilter is the List condition of a Filter.Feedback.
func feedbackFilter(q *query, f string) {
	switch f {
	case "":
	case "any":
		q.add("m.key IN (SELECT key FROM feedback WHERE state != '')")
	default:
		q.add("m.key IN (SELECT key FROM feedback WHERE state = ?)", f)
	}
}
