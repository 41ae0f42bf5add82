package store

import (
	"fmt"
	"slices"
	"strings"
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
