package store

import (
	"strconv"
	"strings"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/mailjet/webhook"
)

// The rules every backend applies the same way: what a message's state is
// given its recipients', which event may replace a recipient's state, and
// the labels of the failure chart.

// messageOrder decides a message's state from its recipients' states: the
// first state in this list that any recipient has wins. Pending states come
// first (the message is still in the queue), then failures, then the least
// advanced success.
var messageOrder = []State{StateDeferred, StateQueued, StateFailed, StateBounced, StateBlocked, StateDeleted,
	StateSpam, StateUnsub, StateSent, StateDelivered, StateSandboxed, StateRefused}

// FromMailjet reports whether a state was set by a Mailjet event.
func FromMailjet(state State) bool {
	switch state {
	case StateDelivered, StateBounced, StateBlocked, StateSpam, StateUnsub:
		return true
	}
	return false
}

// MessageState is the state of a message whose recipients are in the
// given states (current when it has none).
func MessageState(rcpts []*Rcpt, current State) State {
	if len(rcpts) == 0 {
		return current
	}
	have := make(map[State]bool, len(rcpts))
	for _, r := range rcpts {
		have[r.State] = true
	}
	for _, s := range messageOrder {
		if have[s] {
			return s
		}
	}
	return current
}

// MailjetState maps a Mailjet event to the recipient state it implies
// ("" for open and click, which do not change it).
func MailjetState(event string) State {
	switch event {
	case "sent":
		return StateDelivered
	case "bounce":
		return StateBounced
	case "blocked":
		return StateBlocked
	case "spam":
		return StateSpam
	case "unsub":
		return StateUnsub
	}
	return ""
}

// MailjetMayReplace reports whether a Mailjet event's state may replace a
// recipient's current one: Mailjet's events override the relay's, a late
// "sent" does not undo a bounce, a block or a complaint.
func MailjetMayReplace(current, next State) bool {
	if !FromMailjet(current) {
		return true
	}
	if next == StateDelivered {
		return current == StateDelivered
	}
	return true
}

// RelayMayReplace reports whether a relay outcome may replace a recipient's
// state: never one that Mailjet reported.
func RelayMayReplace(current State) bool { return !FromMailjet(current) }

// FailReason condenses a failure into a short label for the failure chart.
func FailReason(reply mailjet.Reply, reason string) string {
	switch {
	case strings.HasPrefix(reason, "gave up"):
		return "expired (queue.max_lifetime)"
	case strings.Contains(reason, "deleted"):
		return "deleted during delivery"
	}
	return ReplyCode(reply)
}

// ReplyCode is "550 5.1.1" for "550 5.1.1 User unknown", "550" without an
// enhanced code, or "no reply".
func ReplyCode(r mailjet.Reply) string {
	switch {
	case r.Code == 0:
		return "no reply"
	case r.Enhanced == "":
		return strconv.Itoa(r.Code)
	}
	return strconv.Itoa(r.Code) + " " + r.Enhanced
}

// MailjetWhy is a Mailjet event's reason label (Summary.Why).
func MailjetWhy(ev *webhook.Event) string {
	if r := ev.Reason(); r != "" {
		return r
	}
	return ev.Event
}

// Clip cuts s to at most n bytes on a UTF-8 boundary.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n]
}
