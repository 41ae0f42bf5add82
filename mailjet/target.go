// Package mailjet holds what the relay needs to reach Mailjet: the delivery
// contract that every upstream transport implements (Target, Message,
// Result; Sandbox for the keyless mode), the hint headers a transport adds
// (HintHeaders, HeaderValue) and MaskKey for showing an API key. Its
// sub-packages:
//
//   - smtpout: the transport over Mailjet's SMTP relay (in-v3.mailjet.com);
//   - sendapi: the transport over the Send API v3.1;
//   - account: the account's senders and domains, fetched and cached;
//   - dnscheck: a sending domain's DNS and readiness checks (`mjrelay check`
//     and the web senders page);
//   - webhook: the events Mailjet posts back and the decoder of their payload;
//   - mjtest and sendapi/sendapitest: an emulator of Mailjet and the Send
//     API's test corpus, for tests only.
package mailjet

import "context"

// Message is one delivery attempt's input.
type Message struct {
	ID    string // the relay's queue id (sent as X-MJ-CustomID / CustomID)
	From  string // envelope sender
	Rcpts []string
	UTF8  bool // the envelope needs SMTPUTF8
	Body  []byte
	Hints Hints
}

// Hints are what the relay asks Mailjet for, beyond the message itself.
// A transport applies each one only if the message does not already carry
// it (an X-Mailjet-Prio or X-Mailjet-Campaign header set by the client wins).
type Hints struct {
	// Priority is X-Mailjet-Prio / Priority (0-3); -1 means not set.
	Priority int
	// Campaign is X-Mailjet-Campaign / CustomCampaign; "" means not set.
	Campaign string
}

// Status is a recipient's outcome.
type Status int

const (
	Delivered Status = iota // accepted by the upstream
	TempFail                // try again later
	PermFail                // give up
)

func (s Status) String() string {
	switch s {
	case Delivered:
		return "delivered"
	case TempFail:
		return "temporary"
	}
	return "permanent"
}

// RcptResult is one recipient's outcome.
type RcptResult struct {
	Rcpt   string
	Status Status
	Reply  Reply
	// Mailjet's ids for this recipient (Send API transport).
	MessageID   int64
	MessageUUID string
}

// Result is what an attempt produced. Rcpts has one entry per recipient of
// the Message, in order.
type Result struct {
	Rcpts      []RcptResult
	Reply      Reply  // the upstream's final reply (or the error)
	UpstreamID string // Mailjet's queue id, when the upstream gave one
	Upstream   string // host:port or URL reached
	// Unsupported is set when this transport cannot carry the message
	// faithfully (e.g. signed MIME over the Send API); Reply says why. The
	// scheduler then tries the route's next transport, or fails the
	// message permanently with that reason.
	Unsupported bool
}

// Target is an upstream transport (Mailjet SMTP, Mailjet Send API, sandbox).
type Target interface {
	Name() string
	Deliver(ctx context.Context, m *Message) Result
	Close() error
}

// AllRcpts gives every recipient of m the same outcome.
func AllRcpts(m *Message, st Status, reply Reply) []RcptResult {
	out := make([]RcptResult, len(m.Rcpts))
	for i, r := range m.Rcpts {
		out[i] = RcptResult{Rcpt: r, Status: st, Reply: reply}
	}
	return out
}

// Sandbox records nothing upstream: every recipient is "delivered" without
// anything being sent.
type Sandbox struct{}

func (Sandbox) Name() string { return "sandbox" }
func (Sandbox) Close() error { return nil }

func (Sandbox) Deliver(_ context.Context, m *Message) Result {
	reply := Reply{Code: 250, Text: "sandbox mode: recorded, not sent"}
	return Result{Rcpts: AllRcpts(m, Delivered, reply), Reply: reply, Upstream: "sandbox"}
}
