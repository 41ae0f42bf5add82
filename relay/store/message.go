package store

import (
	"time"

	"github.com/mjrelay/mjrelay/mailjet/webhook"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// Filter selects messages. Empty fields do not filter.
type Filter struct {
	// State is one state or several separated by commas.
	State string
	Class string
	// From and To match an address exactly (case-insensitive), or a whole
	// domain when given as "@example.com" or "example.com". From matches
	// the envelope sender and the header From.
	From, To string
	// Q searches subject, addresses, queue id, Message-Id and login; a
	// queue id, a Mailjet message id or UUID, or an upstream's "queued as"
	// id finds that message directly.
	Q string
	// Reason selects the messages whose Summary.Why is exactly this.
	Reason string
	// Feedback selects messages by their reports to Odoo: one of
	// FeedbackStates, or "any" for every message with one.
	Feedback string
	// Since and Until bound the receive time (Until exclusive).
	Since, Until time.Time
	// Limit is the page size (default 50, at most 1000).
	Limit int
	// Cursor is Page.Next of the previous page.
	Cursor string
}

// Summary is one message in a list.
type Summary struct {
	ID         string    `json:"id"`
	ReceivedAt time.Time `json:"received_at"`
	State      State     `json:"state"`
	Class      string    `json:"class"`
	From       string    `json:"from"`
	HeaderFrom string    `json:"header_from,omitempty"`
	To         []string  `json:"to"`
	Subject    string    `json:"subject"`
	MessageID  string    `json:"message_id"`
	Size       int64     `json:"size"`
	User       string    `json:"user"`
	Client     string    `json:"client"`
	Transport  string    `json:"transport"`
	// MailjetIDs are Mailjet's message ids (strings: they exceed
	// JavaScript's integers).
	MailjetIDs []string `json:"mailjet_ids"`
	Attempts   int      `json:"attempt_count"`
	Reply      string   `json:"reply,omitempty"`
	Reason     string   `json:"reason,omitempty"`
	// Why is, for a message in a problem state (see Problem), the short
	// reason the statistics count it under: "550 5.1.1", "data:
	// sender_not_found", "recipient: user unknown", "expired
	// (queue.max_lifetime)". Filter.Reason selects by it.
	Why string `json:"why,omitempty"`
	// Attachments is how many attachments the message has (counted when
	// its body is kept; 0 otherwise).
	Attachments int `json:"attachments"`
	// Feedback is where the message's reports to Odoo stand (one of
	// FeedbackStates; "" when there is none).
	Feedback string `json:"feedback,omitempty"`
}

// Page is a list of messages, newest first.
type Page struct {
	Messages []Summary `json:"messages"`
	// Next is the cursor of the following (older) page, "" at the end.
	Next string `json:"next"`
}

// Message is one message with its recipients and full timeline.
type Message struct {
	Summary
	ClassRule string     `json:"class_rule,omitempty"`
	Verdict   string     `json:"verdict,omitempty"`
	Stage     string     `json:"stage,omitempty"`
	Helo      string     `json:"helo,omitempty"`
	TLS       bool       `json:"tls"`
	Upstream  string     `json:"upstream,omitempty"`
	UpdatedAt time.Time  `json:"updated_at"`
	FinalAt   *time.Time `json:"final_at,omitempty"`
	// LatencyMS is the time from receipt to Mailjet's acceptance.
	LatencyMS  float64     `json:"latency_ms,omitempty"`
	Recipients []Recipient `json:"recipients"`
	// Attempts are the delivery attempts, oldest first.
	AttemptList []Attempt `json:"attempts"`
	// Events are Mailjet's webhook events, oldest first.
	Events []webhook.Event `json:"events"`
	// Timeline is everything in order: received → policy → attempts and
	// outcomes → Mailjet events.
	Timeline []Step `json:"timeline"`
	HasRaw   bool   `json:"has_raw"`
	RawSize  int64  `json:"raw_size,omitempty"`
	// UpstreamIDs are the ids the upstream gave the message ("queued as"
	// in Mailjet's SMTP reply, the message UUID of the Send API).
	UpstreamIDs []string `json:"upstream_ids"`
	// Unsubscribe is the one-click unsubscribe URL the message carried
	// (for the Odoo feedback; it holds a per-recipient token, so it is
	// not shown).
	Unsubscribe string `json:"-"`
}

// Recipient is one envelope recipient's outcome.
type Recipient struct {
	Rcpt        string `json:"rcpt"`
	State       State  `json:"state"`
	Reply       string `json:"reply,omitempty"`
	MailjetID   string `json:"mailjet_id,omitempty"`
	MailjetUUID string `json:"mailjet_uuid,omitempty"`
}

// Attempt is one delivery attempt.
type Attempt struct {
	Time       time.Time               `json:"time"`
	Attempt    int                     `json:"attempt"`
	Transport  string                  `json:"transport"`
	Upstream   string                  `json:"upstream,omitempty"`
	UpstreamID string                  `json:"upstream_id,omitempty"`
	Reply      string                  `json:"reply"`
	DurationMS float64                 `json:"duration_ms"`
	Rcpts      []trafficlog.RcptResult `json:"rcpts,omitempty"`
}

// Step is one line of the timeline.
type Step struct {
	Time time.Time `json:"time"`
	// Kind is a relay event (received, policy, refused, attempt, deferred,
	// delivered, failed, sandboxed, deleted) or mailjet:EVENT.
	Kind   string `json:"kind"`
	Source string `json:"source"` // relay or mailjet
	Text   string `json:"text"`
	// Reply is the SMTP reply or Mailjet's explanation, if any.
	Reply string `json:"reply,omitempty"`
	// Next is when a deferred message is tried again.
	Next time.Time `json:"next,omitzero"`
	// Bad marks failures, for the UI.
	Bad bool `json:"bad,omitempty"`
}

// Stats are per-minute counters bucketed for charts. Kinds: received,
// final (left the queue), attempt, delivered (accepted by Mailjet),
// sandboxed, deferred, failed, deleted, refused, and mj_EVENT for
// Mailjet's events (mj_unjoined: events of messages the store does not
// know).
type Stats struct {
	Since       time.Time `json:"since"`
	Until       time.Time `json:"until"`
	StepSeconds int       `json:"step_seconds"`
	Buckets     []Bucket  `json:"buckets"`
	// Totals are the window's counts by kind; ReceivedByClass by lane.
	Totals          map[string]int `json:"totals"`
	ReceivedByClass map[string]int `json:"received_by_class"`
	// Failures are failed, refused, bounced, blocked and spam counts by
	// reason, largest first; Deferrals the deferred attempts by reason.
	Failures  []ReasonCount `json:"failures"`
	Deferrals []ReasonCount `json:"deferrals"`
	// LatencyAvgMS is the mean time from receipt to Mailjet's acceptance
	// (sandboxed mail never reaches Mailjet: it is not counted).
	LatencyAvgMS float64 `json:"latency_avg_ms"`
	LatencyMaxMS float64 `json:"latency_max_ms"`
}

// Bucket is one step of the window.
type Bucket struct {
	Time     time.Time      `json:"time"`
	Received map[string]int `json:"received"` // by class
	Final    map[string]int `json:"final"`    // by class
	Counts   map[string]int `json:"counts"`   // by kind
	// Latency of the messages accepted by Mailjet in this bucket.
	LatencyAvgMS float64 `json:"latency_avg_ms"`
	LatencyMaxMS float64 `json:"latency_max_ms"`
}

// ReasonCount is one line of the failure breakdown: Reason is a
// Summary.Why.
type ReasonCount struct {
	Kind   string `json:"kind"`
	Reason string `json:"reason"`
	N      int    `json:"n"`
}
