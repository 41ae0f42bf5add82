// Package webhook is Mailjet's event webhook as the relay reads it: the
// event type (Event) and a streaming Decoder for the payload Mailjet posts
// (a JSON array of events, or one event object), which reads the body as it
// arrives, hands the events over in bounded batches and says why it skipped
// each one it could not use. The HTTP side (authentication, status codes,
// storing the batches, metrics) is relay/web's.
package webhook

import (
	"slices"
	"strings"
	"time"
)

// Event is one event from Mailjet's event webhook (sent, open, click,
// bounce, blocked, spam, unsub), reduced to what the relay keeps.
type Event struct {
	Event string    `json:"event,omitempty"`
	Time  time.Time `json:"time,omitzero"`
	// Email is the recipient.
	Email string `json:"email,omitempty"`
	// MessageID is Mailjet's message id (a JSON string in the API: it
	// exceeds JavaScript's integers).
	MessageID   int64  `json:"mailjet_id,omitempty,string"`
	MessageUUID string `json:"mailjet_uuid,omitempty"`
	// CustomID is the relay's queue id, echoed by Mailjet.
	CustomID string `json:"custom_id,omitempty"`
	Campaign string `json:"campaign,omitempty"`

	SMTPReply      string `json:"smtp_reply,omitempty"`       // sent
	ErrorRelatedTo string `json:"error_related_to,omitempty"` // bounce, blocked
	Error          string `json:"error,omitempty"`            // bounce, blocked
	Comment        string `json:"comment,omitempty"`          // bounce
	HardBounce     bool   `json:"hard_bounce,omitempty"`      // bounce
	Blocked        bool   `json:"blocked,omitempty"`          // bounce
	Source         string `json:"source,omitempty"`           // spam
	URL            string `json:"url,omitempty"`              // click
	IP             string `json:"ip,omitempty"`               // open, click, unsub
	Geo            string `json:"geo,omitempty"`
	Agent          string `json:"agent,omitempty"`
	ListID         int64  `json:"list_id,omitempty,string"` // unsub
}

// Events are the event names Mailjet sends.
var Events = []string{"sent", "open", "click", "bounce", "blocked", "spam", "unsub"}

// Reply is the text that best explains the event's outcome.
func (e *Event) Reply() string {
	switch {
	case e.SMTPReply != "":
		return e.SMTPReply
	case e.Error != "" && e.ErrorRelatedTo != "":
		s := e.ErrorRelatedTo + ": " + e.Error
		if e.Comment != "" {
			s += " (" + e.Comment + ")"
		}
		return s
	case e.Error != "":
		return e.Error
	case e.Comment != "":
		return e.Comment
	case e.Source != "":
		return "reported by " + e.Source
	}
	return ""
}

// Reason is a short label for the failure chart.
func (e *Event) Reason() string {
	switch {
	case e.ErrorRelatedTo != "" && e.Error != "":
		return clip(e.ErrorRelatedTo+": "+e.Error, 60)
	case e.Error != "":
		return clip(e.Error, 60)
	case e.Source != "":
		return clip(e.Source, 60)
	}
	return ""
}

// Known tells whether name is one of Events.
func Known(name string) bool { return slices.Contains(Events, name) }

// clip cuts s to at most n bytes on a UTF-8 boundary; the cut copy does not
// keep the rest of s in memory.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return strings.Clone(s[:n])
}
