package trafficlog

import (
	"time"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/relay/queue"
)

// Conn is what the relay knows of an SMTP client's transaction when it
// refuses it or the client leaves: events about mail that was not queued.
type Conn struct {
	Client, User, Helo string
	TLS                bool
	From               string
	To                 []string
}

// Refusal is a refusal's particulars: where, why, the reply sent, and what
// was read of the message when it was refused at the end of DATA.
type Refusal struct {
	Stage, Reason string
	Reply         mailjet.Reply
	Verdict       string
	HeaderFrom    string
	Subject       string
	MessageID     string
	Size          int64
}

// NewRefused is a refusal given to a client.
func NewRefused(c Conn, r Refusal) Event {
	e := c.event(Refused)
	e.Stage, e.Reason, e.Reply, e.Verdict = r.Stage, r.Reason, r.Reply, r.Verdict
	e.HeaderFrom, e.Subject, e.MessageID, e.Size = r.HeaderFrom, r.Subject, r.MessageID, r.Size
	return e
}

// NewAborted is a transaction the client ended (or let time out) at stage,
// after size bytes of its message; nothing was queued.
func NewAborted(c Conn, stage, reason string, size int64) Event {
	e := c.event(Aborted)
	e.Stage, e.Reason, e.Size = stage, reason, size
	return e
}

func (c Conn) event(kind Kind) Event {
	return Event{Event: kind, Client: c.Client, User: c.User, Helo: c.Helo, TLS: c.TLS, From: c.From, To: c.To}
}

// ofMessage starts every event about a queued message: its envelope, the
// same fields whoever records the event.
func ofMessage(kind Kind, env queue.Envelope) Event {
	return Event{
		Event: kind, ID: env.ID, Client: env.Client, User: env.User, Helo: env.Helo,
		From: env.From, To: env.To, HeaderFrom: env.HeaderFrom, Subject: env.Subject,
		MessageID: env.MessageID, Size: env.Size, Class: env.Class, ClassRule: env.ClassRule,
	}
}

// NewReceived is a message stored in the queue. tls tells how it came;
// verdict is the sender policy's, when not a plain pass; raw is the stored
// message, for the recorders that keep bodies (nil otherwise).
func NewReceived(env queue.Envelope, tls bool, verdict string, raw []byte) Event {
	e := ofMessage(Received, env)
	e.TLS, e.Verdict, e.Raw = tls, verdict, raw
	e.Unsubscribe = env.Unsubscribe
	return e
}

// Try is one delivery attempt through one transport, or the outcome it
// produced for some recipients.
type Try struct {
	Attempt    int      // 1 for the first attempt
	To         []string // the recipients it is about
	Transport  string
	Upstream   string
	UpstreamID string
	Reply      mailjet.Reply
	Reason     string // why, for failures and deletions
	Rcpts      []RcptResult
	// Duration: of the attempt (attempt events), or since the message was
	// received (delivered and sandboxed: the latency to Mailjet).
	Duration time.Duration
	Next     time.Time // deferred: when it is tried again
}

// NewAttempt is one delivery attempt.
func NewAttempt(env queue.Envelope, t Try) Event { return t.event(Attempt, env) }

// NewDelivered: Mailjet accepted the message for t.To.
func NewDelivered(env queue.Envelope, t Try) Event { return t.event(Delivered, env) }

// NewSandboxed: sandbox mode recorded the message for t.To and sent nothing.
func NewSandboxed(env queue.Envelope, t Try) Event { return t.event(Sandboxed, env) }

// NewFailed: delivery to t.To failed for good.
func NewFailed(env queue.Envelope, t Try) Event { return t.event(Failed, env) }

// NewDeferred: delivery to t.To failed for now; it is tried again at t.Next.
func NewDeferred(env queue.Envelope, t Try) Event { return t.event(Deferred, env) }

// NewDeleted: an administrator removed the message from the queue.
func NewDeleted(env queue.Envelope, reason string) Event {
	e := ofMessage(Deleted, env)
	e.Reason = reason
	return e
}

func (t Try) event(kind Kind, env queue.Envelope) Event {
	e := ofMessage(kind, env)
	if t.To != nil {
		e.To = t.To
	}
	e.Attempt, e.Transport, e.Upstream, e.UpstreamID = t.Attempt, t.Transport, t.Upstream, t.UpstreamID
	e.Reply, e.Reason, e.Rcpts, e.Next = t.Reply, t.Reason, t.Rcpts, t.Next
	if t.Duration > 0 {
		e.DurationMS = Millis(t.Duration)
	}
	return e
}

// RcptResults turns a transport's per-recipient outcomes into the event's.
func RcptResults(rs []mailjet.RcptResult) []RcptResult {
	out := make([]RcptResult, len(rs))
	for i, r := range rs {
		out[i] = RcptResult{Rcpt: r.Rcpt, Status: r.Status.String(), Reply: r.Reply, MessageID: r.MessageID, MessageUUID: r.MessageUUID}
	}
	return out
}
