package inspect

import (
	"context"
	"database/sql"
	"errors"
	"strings"

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
	feedbackNote = `INSERT INTO feedback (key, pending, reported, failed, alerts) VALUES (?1, max(?2, 0), ?3, ?4, ?5)
		ON CONFLICT(key) DO UPDATE SET pending = max(pending + ?2, 0), reported = reported + ?3,
		failed = failed + ?4, alerts = alerts + ?5`
	feedbackState = `UPDATE feedback SET state = CASE WHEN pending > 0 THEN 'pending' WHEN failed > 0 THEN 'failed'
		WHEN reported > 0 THEN 'reported' WHEN alerts > 0 THEN 'alert' ELSE '' END WHERE key = ?`
)

// applyFeedback records a report to Odoo on its message.
func (w *writer) applyFeedback(e *trafficlog.Event) error {
	m, err := w.load("byID", e.ID)
	if err != nil || m == nil {
		return err // a message the store does not know: nothing to attach it to
	}
	var pending, reported, failed, alerts int
	switch e.Result {
	case trafficlog.FeedbackQueued:
		pending = 1
	case trafficlog.FeedbackReported:
		pending, reported = -1, 1
	case trafficlog.FeedbackFailed:
		pending, failed = -1, 1
	case trafficlog.FeedbackAlert:
		alerts = 1
	}
	if pending != 0 || reported+failed+alerts > 0 {
		if _, err := w.st["feedbackNote"].ExecContext(w.ctx, m.key, pending, reported, failed, alerts); err != nil {
			return err
		}
		if _, err := w.st["feedbackState"].ExecContext(w.ctx, m.key); err != nil {
			return err
		}
	}
	w.stat(e.Time, "feedback_"+e.Result, m.class, e.Action, 0)
	return w.event(m.key, e.Time, string(e.Event), eventData(e, m.rcptTo))
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

// feedbackStep is the timeline line of a report to Odoo.
func feedbackStep(e *trafficlog.Event) store.Step {
	st := store.Step{Time: e.Time, Kind: "odoo:" + e.Result, Source: "odoo", Reply: e.Answer}
	who := orDash(strings.Join(e.To, ", "))
	what := map[string]string{"bounce": "bounce (DSN)", "blacklist": "blacklisting", "unsubscribe": "one-click unsubscription"}[e.Action]
	switch e.Result {
	case trafficlog.FeedbackQueued:
		st.Text = "To report to Odoo: " + what + " for " + who + " (" + e.Reason + ")"
	case trafficlog.FeedbackReported:
		st.Text = "Reported to Odoo: " + what + " for " + who
	case trafficlog.FeedbackRetrying:
		st.Text, st.Bad = "Odoo did not take the "+what+" for "+who+" yet; retrying", true
	case trafficlog.FeedbackFailed:
		st.Text, st.Bad = "Odoo refused the "+what+" for "+who+" for good", true
	case trafficlog.FeedbackAlert:
		st.Text, st.Bad = "Not reported to Odoo ("+who+"): "+e.Reason, true
	default:
		st.Text = "Not reported to Odoo (" + who + "): " + e.Reason
	}
	return st
}
