package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// testFeedback: a message's one-click unsubscribe URL is kept from its
// received event (and not shown); reports to Odoo (feedback events) are on
// its timeline, set its feedback state, and the feedback filter finds it.
func testFeedback(t *testing.T, h Harness) {
	s := open(t, h, Options{})
	defer s.Close()
	a, b, c := QueueID(T0, 1), QueueID(T0, 2), QueueID(T0, 3)
	const url = "https://erp.example.com/mailing/3/unsubscribe_oneclick?document_id=1&email=x%40y.z&hash_token=secret"
	fa := NewFlow(T0, a, "bounce@example.com", []string{"x@example.org", "y@example.org"}, "Newsletter").Received(nil).Attempt("smtp", "250 OK").Delivered()
	fa.events[0].Unsubscribe = url
	fb := NewFlow(T0.Add(time.Second), b, "bounce@example.com", []string{"z@example.org"}, "Quote").Received(nil).Attempt("smtp", "250 OK").Delivered()
	fc := NewFlow(T0.Add(2*time.Second), c, "bounce@example.com", []string{"w@example.org"}, "Invoice").Received(nil).Attempt("smtp", "250 OK").Delivered()
	note := func(id, rcpt, result string, d time.Duration) trafficlog.Event {
		e := trafficlog.NewFeedback(id, trafficlog.FeedbackNote{Rcpt: rcpt, Action: "bounce", Result: result, Reason: "mailjet bounce: no such user", Answer: "message_process returned false"})
		e.Time = T0.Add(d)
		return e
	}
	evs := append(append(fa.Events(), fb.Events()...), fc.Events()...)
	evs = append(evs,
		note(a, "x@example.org", trafficlog.FeedbackQueued, time.Minute), note(a, "y@example.org", trafficlog.FeedbackQueued, time.Minute),
		note(a, "x@example.org", trafficlog.FeedbackReported, 2*time.Minute),
		note(b, "z@example.org", trafficlog.FeedbackQueued, time.Minute), note(b, "z@example.org", trafficlog.FeedbackFailed, 2*time.Minute),
		note(c, "w@example.org", trafficlog.FeedbackAlert, time.Minute))
	Feed(t, s, evs)
	m := get(t, s, a)
	if m.Unsubscribe != url || m.Feedback != store.FeedbackPending {
		t.Fatalf("unsubscribe %q, feedback %q", m.Unsubscribe, m.Feedback)
	}
	var odoo []string
	for _, st := range m.Timeline {
		if st.Source == "odoo" {
			odoo = append(odoo, st.Kind)
		}
	}
	if !slices.Equal(odoo, []string{"odoo:queued", "odoo:queued", "odoo:reported"}) || m.Timeline[len(m.Timeline)-1].Reply == "" {
		t.Fatalf("timeline %v", Kinds(m))
	}
	Feed(t, s, []trafficlog.Event{note(a, "y@example.org", trafficlog.FeedbackReported, 3*time.Minute)})
	if m := get(t, s, a); m.Feedback != store.FeedbackReported {
		t.Fatalf("after both reported: %q", m.Feedback)
	}
	for f, want := range map[string][]string{store.FeedbackReported: {a}, store.FeedbackFailed: {b}, store.FeedbackAlert: {c},
		store.FeedbackPending: nil, "any": {c, b, a}} {
		if got := IDs(t, s, store.Filter{Feedback: f}); !slices.Equal(got, want) {
			t.Errorf("feedback %s: %v, want %v", f, got, want)
		}
	}
}
