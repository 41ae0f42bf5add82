package inspect

import (
	"strconv"
	"strings"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/relay/store"
)

// messageOrder decides a message's state from its recipients' states: the
// first state in this list that any recipient has wins. Pending states come
// first (the message is still in the queue), then failures, then the least
// advanced success.
var messageOrder = []store.State{store.StateDeferred, store.StateQueued, store.StateFailed, store.StateBounced, store.StateBlocked, store.StateDeleted,
	store.StateSpam, store.StateUnsub, store.StateSent, store.StateDelivered, store.StateSandboxed, store.StateRefused}

// fromMailjet reports whether a state was set by a Mailjet event.
func fromMailjet(state store.State) bool {
	switch state {
	case store.StateDelivered, store.StateBounced, store.StateBlocked, store.StateSpam, store.StateUnsub:
		return true
	}
	return false
}

func messageState(rcpts []*rcptRow, current store.State) store.State {
	if len(rcpts) == 0 {
		return current
	}
	have := make(map[store.State]bool, len(rcpts))
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
func mailjetState(event string) store.State {
	switch event {
	case "sent":
		return store.StateDelivered
	case "bounce":
		return store.StateBounced
	case "blocked":
		return store.StateBlocked
	case "spam":
		return store.StateSpam
	case "unsub":
		return store.StateUnsub
	}
	return ""
}

// mailjetMayReplace reports whether a Mailjet event's state may replace a
// recipient's current one: Mailjet's events override the relay's, a late
// "sent" does not undo a bounce, a block or a complaint.
func mailjetMayReplace(current, next store.State) bool {
	if !fromMailjet(current) {
		return true
	}
	if next == store.StateDelivered {
		return current == store.StateDelivered
	}
	return true
}

// relayMayReplace reports whether a relay outcome may replace a recipient's
// state: never one that Mailjet reported.
func relayMayReplace(current store.State) bool { return !fromMailjet(current) }

// failReason condenses a failure into a short label for the failure chart.
func failReason(reply mailjet.Reply, reason string) string {
	switch {
	case strings.HasPrefix(reason, "gave up"):
		return "expired (queue.max_lifetime)"
	case strings.Contains(reason, "deleted"):
		return "deleted during delivery"
	}
	return replyCode(reply)
}

// replyCode is "550 5.1.1" for "550 5.1.1 User unknown", "550" without an
// enhanced code, or "no reply".
func replyCode(r mailjet.Reply) string {
	switch {
	case r.Code == 0:
		return "no reply"
	case r.Enhanced == "":
		return strconv.Itoa(r.Code)
	}
	return strconv.Itoa(r.Code) + " " + r.Enhanced
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
