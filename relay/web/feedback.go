package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/mjrelay/mjrelay/mailjet/webhook"
	"github.com/mjrelay/mjrelay/relay/feedback"
)

// Feedback is the Odoo feedback (relay/feedback.Reporter): the webhook
// hands it Mailjet's events once the store has them, and the UI, the API
// and /readyz show its state.
type Feedback interface {
	Mailjet(ctx context.Context, evs []webhook.Event) error
	Status(ctx context.Context) feedback.Status
}

// feedbackProblem is the standing fault of the Odoo feedback, or "".
func (s *Server) feedbackProblem(ctx context.Context) string {
	if s.d.Feedback == nil {
		return ""
	}
	return s.d.Feedback.Status(ctx).Problem
}

// feedbackCard is the dashboard's Odoo feedback section.
type feedbackCard struct {
	Enabled                   bool
	Status                    feedback.Status
	Reported, Failed, Alerts  int // in the window
	OldestAge                 string
	ReportedLink, FailedLink  string
	PendingLink, AlertsLink   string
	ProblemSince, LastSuccess time.Time
}

func (s *Server) feedbackCard(ctx context.Context, rep *StatsReport, window string) feedbackCard {
	if s.d.Feedback == nil {
		return feedbackCard{}
	}
	st := s.d.Feedback.Status(ctx)
	since := url.QueryEscape(window)
	c := feedbackCard{Enabled: true, Status: st, Reported: rep.Totals["feedback_reported"], Failed: rep.Totals["feedback_failed"],
		Alerts: rep.Totals["feedback_alert"], ReportedLink: "/messages?feedback=reported&since=" + since,
		FailedLink: "/messages?feedback=failed&since=" + since, PendingLink: "/messages?feedback=pending",
		AlertsLink: "/messages?feedback=alert&since=" + since}
	if !st.Oldest.IsZero() {
		c.OldestAge = s.d.Now().Sub(st.Oldest).Round(time.Second).String()
	}
	if st.Problem != "" {
		c.ProblemSince = st.Since
	}
	c.LastSuccess = st.Last
	return c
}

// apiFeedback serves GET /api/feedback: the reporter's state.
func (s *Server) apiFeedback(w http.ResponseWriter, r *http.Request) {
	if s.d.Feedback == nil {
		writeJSON(w, http.StatusOK, map[string]any{"enabled": false})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"enabled": true, "status": s.d.Feedback.Status(r.Context())})
}

// readyNote is what /readyz adds about the Odoo feedback. A fault there
// does not make the relay unready: SMTP, the queue and delivery work, and a
// load balancer must not drop a node that accepts and delivers mail
// because Odoo refuses the relay's API key; the reports wait in the
// outbox. So /readyz stays 200 and says so on a line of its own (and
// mjrelay_odoo_feedback_blocked alerts).
func (s *Server) readyNote(ctx context.Context) string {
	if p := s.feedbackProblem(ctx); p != "" {
		return fmt.Sprintf("warning: reports to Odoo are waiting in the outbox: %s", p)
	}
	return ""
}
