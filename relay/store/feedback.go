package store

import (
	"fmt"
	"slices"
	"strings"

	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// Where a message's reports to Odoo stand (Summary.Feedback): pending
// while one waits in the outbox, failed once Odoo refused one for good,
// reported when Odoo took them all, alert when a block was not reported
// because it was not the recipient's fault.
const (
	FeedbackPending  = "pending"
	FeedbackReported = "reported"
	FeedbackFailed   = "failed"
	FeedbackAlert    = "alert"
)

// FeedbackStates lists them, as filters take them.
var FeedbackStates = []string{FeedbackPending, FeedbackReported, FeedbackFailed, FeedbackAlert}

// CheckFeedback validates a feedback filter ("" and "any" included).
func CheckFeedback(f string) error {
	if f == "" || f == "any" || slices.Contains(FeedbackStates, f) {
		return nil
	}
	return fmt.Errorf("unknown feedback state %q (one of any, %s)", f, strings.Join(FeedbackStates, ", "))
}

// FeedbackCounts are a message's reports to Odoo by where they stand;
// its feedback state follows from them.
type FeedbackCounts struct{ Pending, Reported, Failed, Alerts int }

// Note counts a report's result (one of trafficlog's Feedback results);
// it reports whether the counts changed.
func (c *FeedbackCounts) Note(result string) bool {
	switch result {
	case trafficlog.FeedbackQueued:
		c.Pending++
	case trafficlog.FeedbackReported:
		c.Pending, c.Reported = max(c.Pending-1, 0), c.Reported+1
	case trafficlog.FeedbackFailed:
		c.Pending, c.Failed = max(c.Pending-1, 0), c.Failed+1
	case trafficlog.FeedbackAlert:
		c.Alerts++
	default:
		return false
	}
	return true
}

// State is the feedback state of a message with these counts: pending
// while a report waits, then failed, reported, alert ("" for none).
func (c FeedbackCounts) State() string {
	switch {
	case c.Pending > 0:
		return FeedbackPending
	case c.Failed > 0:
		return FeedbackFailed
	case c.Reported > 0:
		return FeedbackReported
	case c.Alerts > 0:
		return FeedbackAlert
	}
	return ""
}

// ApplyFeedback applies a report to Odoo about the message to its counts
// and returns it as the timeline keeps it, and whether the counts changed.
func (r *Row) ApplyFeedback(e *trafficlog.Event, fb *FeedbackCounts, c Counter) (StoredEvent, bool) {
	changed := fb.Note(e.Result)
	c.Count(e.Time, "feedback_"+e.Result, r.Class, e.Action, 0, 1)
	return StoredEvent{At: e.Time, Kind: string(e.Event), Data: eventData(e, r.RcptTo)}, changed
}

// feedbackStep is the timeline line of a report to Odoo.
func feedbackStep(e *trafficlog.Event) Step {
	st := Step{Time: e.Time, Kind: "odoo:" + e.Result, Source: "odoo", Reply: e.Answer}
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
