package store

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// State is a message's (or a recipient's) state. queued, deferred, sent,
// failed, refused, sandboxed and deleted come from the relay; delivered,
// bounced, blocked, spam and unsub from Mailjet's events. A message's state
// is derived from its recipients'.
type State string

// Message states.
const (
	StateQueued    State = "queued"
	StateDeferred        = "deferred"
	StateSent            = "sent" // accepted by Mailjet
	StateFailed          = "failed"
	StateRefused         = "refused"
	StateSandboxed       = "sandboxed"
	StateDeleted         = "deleted"
	StateDelivered       = "delivered" // Mailjet "sent": the recipient's server accepted it
	StateBounced         = "bounced"
	StateBlocked         = "blocked"
	StateSpam            = "spam"
	StateUnsub           = "unsub"
)

// States lists every state, in the order the UI offers them.
var States = []State{StateQueued, StateDeferred, StateSent, StateDelivered, StateFailed, StateBounced,
	StateBlocked, StateSpam, StateUnsub, StateRefused, StateSandboxed, StateDeleted}

// StateNames are the states' names, in the order of States.
func StateNames() []string {
	names := make([]string, len(States))
	for i, x := range States {
		names[i] = string(x)
	}
	return names
}

// Pending reports whether a state means the message is still queued.
func Pending(state State) bool { return state == StateQueued || state == StateDeferred }

// Problem reports whether a message in state needs an explanation: it was
// refused, failed, is deferred, was deleted from the queue, or Mailjet
// bounced, blocked it or it was reported as spam (Summary.Why says why).
func Problem(state State) bool {
	switch state {
	case StateRefused, StateFailed, StateDeferred, StateBounced, StateBlocked, StateSpam, StateDeleted:
		return true
	}
	return false
}

// ValidState reports whether s is a state name.
func ValidState(s string) bool {
	for _, x := range States {
		if string(x) == s {
			return true
		}
	}
	return false
}

// CheckStates validates a comma-separated state filter.
func CheckStates(list string) error {
	for _, st := range (Filter{State: list}).States() {
		if !ValidState(st) {
			return fmt.Errorf("unknown state %q (one of %s)", st, strings.Join(StateNames(), ", "))
		}
	}
	return nil
}

// States returns the states f.State names.
func (f Filter) States() []string {
	var out []string
	for _, x := range strings.Split(f.State, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// ParseTime reads a filter time as the API and `mjrelay log` accept it:
// RFC 3339, a date or a date and time (in loc), unix seconds, or a duration
// before now ("90m", "24h", "7d"). "" is the zero time.
func ParseTime(s string, now time.Time, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
		return time.Unix(n, 0), nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(d); err == nil && n >= 0 {
			return now.Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time (RFC 3339, 2006-01-02 15:04, unix seconds, or a duration ago like 24h or 7d)", s)
}
