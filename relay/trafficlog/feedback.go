package trafficlog

// Feedback results: what happened to a report to Odoo.
const (
	FeedbackQueued   = "queued"   // written to the outbox
	FeedbackRetrying = "retrying" // an attempt failed; it is tried again
	FeedbackReported = "reported" // Odoo took it
	FeedbackFailed   = "failed"   // Odoo refused it for good
	FeedbackAlert    = "alert"    // not reported: not the recipient's fault
	FeedbackSkipped  = "skipped"  // not reported: nothing to report it with
)

// FeedbackNote is one report to Odoo about one recipient of a message.
type FeedbackNote struct {
	Rcpt    string
	Action  string // bounce, blacklist, unsubscribe ("" for alerts)
	Result  string // one of the Feedback results
	Reason  string // what is reported, or why not
	Answer  string // Odoo's answer, or the error
	Attempt int
}

// NewFeedback is a report to Odoo about message id (trafficlog events of
// kind feedback; the store shows them on the message's timeline).
func NewFeedback(id string, n FeedbackNote) Event {
	e := Event{Event: Feedback, ID: id, Action: n.Action, Result: n.Result, Reason: n.Reason, Answer: n.Answer, Attempt: n.Attempt}
	if n.Rcpt != "" {
		e.To = []string{n.Rcpt}
	}
	return e
}
