package inspect

import "strings"

// Message states. queued, deferred, sent, failed, refused, sandboxed and
// deleted come from the relay; delivered, bounced, blocked, spam and unsub
// from Mailjet's events. A message's state is derived from its recipients'.
const (
	StateQueued    = "queued"
	StateDeferred  = "deferred"
	StateSent      = "sent" // accepted by Mailjet
	StateFailed    = "failed"
	StateRefused   = "refused"
	StateSandboxed = "sandboxed"
	StateDeleted   = "deleted"
	StateDelivered = "delivered" // Mailjet "sent": the recipient's server accepted it
	StateBounced   = "bounced"
	StateBlocked   = "blocked"
	StateSpam      = "spam"
	StateUnsub     = "unsub"
)

// States lists every state, in the order the UI offers them.
var States = []string{StateQueued, StateDeferred, StateSent, StateDelivered, StateFailed, StateBounced,
	StateBlocked, StateSpam, StateUnsub, StateRefused, StateSandboxed, StateDeleted}

// messageOrder decides a message's state from its recipients' states: the
// first state in this list that any recipient has wins. Pending states come
// first (the message is still in the queue), then failures, then the least
// advanced success.
var messageOrder = []string{StateDeferred, StateQueued, StateFailed, StateBounced, StateBlocked, StateDeleted,
	StateSpam, StateUnsub, StateSent, StateDelivered, StateSandboxed, StateRefused}

// Pending reports whether a state means the message is still queued.
func Pending(state string) bool { return state == StateQueued || state == StateDeferred }

// fromMailjet reports whether a state was set by a Mailjet event.
func fromMailjet(state string) bool {
	switch state {
	case StateDelivered, StateBounced, StateBlocked, StateSpam, StateUnsub:
		return true
	}
	return false
}

func messageState(rcpts []*rcptRow, current string) string {
	if len(rcpts) == 0 {
		return current
	}
	have := make(map[string]bool, len(rcpts))
	for _, r := range rcpts {
		have[r.state] = true
	}
	for _, s := range messageOrder {
		if have[s] {
			return s
		}
	}
	return current
}

// mailjetState maps a Mailjet event to the recipient state it implies
// ("" for open and click, which do not change it).
func mailjetState(event string) string {
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

// mailjetMayReplace reports whether a Mailjet event's state may replace a
// recipient's current one: Mailjet's events override the relay's, a late
// "sent" does not undo a bounce, a block or a complaint.
func mailjetMayReplace(current, next string) bool {
	if !fromMailjet(current) {
		return true
	}
	if next == StateDelivered {
		return current == StateDelivered
	}
	return true
}

// relayMayReplace reports whether a relay outcome may replace a recipient's
// state: never one that Mailjet reported.
func relayMayReplace(current string) bool { return !fromMailjet(current) }

// failReason condenses a failure into a short label for the failure chart.
func failReason(reply, reason string) string {
	switch {
	case strings.HasPrefix(reason, "gave up"):
		return "expired (queue.max_lifetime)"
	case strings.Contains(reason, "deleted"):
		return "deleted during delivery"
	}
	return replyCode(reply)
}

// replyCode returns "550 5.1.1" from "550 5.1.1 User unknown", or "no reply".
func replyCode(reply string) string {
	f := strings.Fields(reply)
	if len(f) == 0 || len(f[0]) != 3 || f[0][0] < '2' || f[0][0] > '5' {
		if len(f) > 0 && len(f[0]) > 3 && f[0][3] == '-' {
			return f[0][:3]
		}
		return "no reply"
	}
	if len(f) > 1 && strings.Count(f[1], ".") == 2 && len(f[1]) <= 9 && f[1][0] >= '2' && f[1][0] <= '5' {
		return f[0] + " " + f[1]
	}
	return f[0]
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n]
}
