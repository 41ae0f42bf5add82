package storetest

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"github.com/mjrelay/mjrelay/mailjet"
	"time"

	"github.com/mjrelay/mjrelay/mailjet/webhook"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// QueueID returns a queue id as the spool makes them: 12 hex digits of
// unix milliseconds, then 8 of a counter.
func QueueID(t time.Time, n uint32) string {
	var b [10]byte
	ms := uint64(t.UnixMilli())
	b[0], b[1], b[2], b[3], b[4], b[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	binary.BigEndian.PutUint32(b[6:], n)
	return hex.EncodeToString(b[:])
}

// Flow builds the events of one message.
type Flow struct {
	base   trafficlog.Event
	t      time.Time
	recv   time.Time
	n      int
	tr     string
	upID   string
	events []trafficlog.Event
}

// Upstream sets the id the upstream gives the message ("queued as") in the
// attempts and outcomes added after it.
func (f *Flow) Upstream(id string) *Flow { f.upID = id; return f }

// NewFlow starts a message received at t.
func NewFlow(t time.Time, id, from string, to []string, subject string) *Flow {
	return &Flow{t: t, recv: t, base: trafficlog.Event{ID: id, From: from, To: to, HeaderFrom: from,
		Subject: subject, MessageID: fmt.Sprintf("<%s@odoo.example>", id), Size: 4242,
		Client: "192.0.2.10:51234", User: "odoo", Class: "transactional", ClassRule: "default"}}
}

// Class sets the lane and the rule that chose it.
func (f *Flow) Class(class, rule string) *Flow {
	f.base.Class, f.base.ClassRule = class, rule
	return f
}

// User sets the SMTP login.
func (f *Flow) User(u string) *Flow { f.base.User = u; return f }

func (f *Flow) ev(kind trafficlog.Kind, d time.Duration) trafficlog.Event {
	f.t = f.t.Add(d)
	e := f.base
	e.Event, e.Time = kind, f.t
	e.To = append([]string(nil), f.base.To...)
	return e
}

// Received adds the received event (with raw, if not nil).
func (f *Flow) Received(raw []byte) *Flow {
	e := f.ev(trafficlog.Received, 0)
	e.Helo, e.TLS, e.Raw = "odoo.example", true, raw
	f.events = append(f.events, e)
	return f
}

// Attempt adds a delivery attempt; each RcptResult's Status tells the
// outcome the next calls will record.
func (f *Flow) Attempt(transport, reply string, rcpts ...trafficlog.RcptResult) *Flow {
	f.n, f.tr = f.n+1, transport
	e := f.ev(trafficlog.Attempt, 2*time.Second)
	e.Transport, e.Upstream, e.Reply, e.Attempt, e.DurationMS = transport, "in-v3.mailjet.com:587", mailjet.ParseReply(reply), f.n, 180
	e.Rcpts, e.UpstreamID = rcpts, f.upID
	f.events = append(f.events, e)
	return f
}

func (f *Flow) outcome(kind trafficlog.Kind, reply, reason string, to []string) *Flow {
	e := f.ev(kind, 0)
	if len(to) > 0 {
		e.To = to
	}
	e.Transport, e.Upstream, e.Reply, e.Reason, e.Attempt = f.tr, "in-v3.mailjet.com:587", mailjet.ParseReply(reply), reason, f.n
	if kind != trafficlog.Deleted {
		e.UpstreamID = f.upID
	}
	e.DurationMS = float64(f.t.Sub(f.recv).Milliseconds())
	f.events = append(f.events, e)
	return f
}

// Delivered records Mailjet's acceptance for to (default: all).
func (f *Flow) Delivered(to ...string) *Flow {
	return f.outcome(trafficlog.Delivered, "250 OK queued as 1ab2", "", to)
}

// Sandboxed records a sandbox-mode delivery.
func (f *Flow) Sandboxed() *Flow {
	return f.outcome(trafficlog.Sandboxed, "250 sandbox", "sandbox mode: recorded, not sent", nil)
}

// Deferred records a temporary failure.
func (f *Flow) Deferred(reply string, to ...string) *Flow {
	f.outcome(trafficlog.Deferred, reply, "", to)
	f.events[len(f.events)-1].Next = f.t.Add(time.Minute)
	return f
}

// Failed records a permanent failure.
func (f *Flow) Failed(reply, reason string, to ...string) *Flow {
	return f.outcome(trafficlog.Failed, reply, reason, to)
}

// Deleted records an administrator's deletion.
func (f *Flow) Deleted() *Flow {
	return f.outcome(trafficlog.Deleted, "", "deleted by an administrator", nil)
}

// Events returns the events built so far.
func (f *Flow) Events() []trafficlog.Event { return f.events }

// Time is the time of the last event.
func (f *Flow) Time() time.Time { return f.t }

// Refused returns a refusal (no queue id) as the SMTP session records it.
func Refused(t time.Time, stage, reason, reply, from string, to []string) trafficlog.Event {
	return trafficlog.Event{Time: t, Event: trafficlog.Refused, Client: "192.0.2.99:40000", User: "odoo",
		From: from, To: to, Stage: stage, Reason: reason, Reply: mailjet.ParseReply(reply)}
}

// Mailjet returns a Mailjet webhook event for a message.
func Mailjet(t time.Time, event, customID, email string, mjID int64) webhook.Event {
	e := webhook.Event{Event: event, Time: t, Email: email, MessageID: mjID, CustomID: customID,
		MessageUUID: fmt.Sprintf("1ab23cd4-0000-4000-8000-%012d", mjID%1e12)}
	switch event {
	case "sent":
		e.SMTPReply = "sent (250 2.0.0 OK 1430812195 gsmtp)"
	case "bounce":
		e.HardBounce, e.ErrorRelatedTo, e.Error, e.Comment = true, "recipient", "user unknown", "550 5.1.1 no such user"
	case "blocked":
		e.ErrorRelatedTo, e.Error = "mailjet", "preblocked"
	case "spam":
		e.Source = "JMRPP"
	case "open", "click", "unsub":
		e.IP, e.Agent = "198.51.100.7", "Mozilla/5.0"
		if event == "click" {
			e.URL = "https://odoo.example/my/invoices/42"
		}
	}
	return e
}

// Sample is a small mixed traffic: the ids and what became of them.
type Sample struct {
	Events  []trafficlog.Event
	Mailjet []webhook.Event
	// IDs by name: invoice (delivered, Mailjet "sent"), newsletter (bulk,
	// bounced), retry (deferred, still queued), failed (5xx), sandbox.
	IDs map[string]string
}

// NewSample builds the sample traffic around t.
func NewSample(t time.Time) *Sample {
	s := &Sample{IDs: map[string]string{}}
	add := func(name string, f *Flow) {
		s.IDs[name] = f.base.ID
		s.Events = append(s.Events, f.Events()...)
	}
	id := func(n uint32) string { return QueueID(t.Add(time.Duration(n-1)*10*time.Second), n) }

	inv := NewFlow(t, id(1), "invoices@acme.example", []string{"mr.x@client.example"}, "Invoice INV/2026/0042").
		Received([]byte("From: invoices@acme.example\r\nTo: mr.x@client.example\r\nSubject: Invoice INV/2026/0042\r\n\r\nHello Mr. X\r\n")).
		Attempt("api", "250 OK", trafficlog.RcptResult{Rcpt: "mr.x@client.example", Status: "delivered", Reply: mailjet.ParseReply("250 OK"),
			MessageID: 288230376151711744, MessageUUID: "1ab23cd4-0000-4000-8000-000000000001"}).
		Delivered()
	add("invoice", inv)
	s.Mailjet = append(s.Mailjet, Mailjet(inv.Time().Add(3*time.Second), "sent", inv.base.ID, "mr.x@client.example", 288230376151711744))

	nl := NewFlow(t.Add(10*time.Second), id(2), "news@acme.example", []string{"old@gone.example"}, "Spring newsletter").
		Class("bulk", "list-unsubscribe-post").User("odoo-bulk").Received(nil).
		Attempt("smtp", "250 OK queued", trafficlog.RcptResult{Rcpt: "old@gone.example", Status: "delivered", Reply: mailjet.ParseReply("250 OK")}).
		Delivered()
	add("newsletter", nl)
	s.Mailjet = append(s.Mailjet, Mailjet(nl.Time().Add(5*time.Second), "bounce", nl.base.ID, "old@gone.example", 288230376151711999))

	rt := NewFlow(t.Add(20*time.Second), id(3), "sales@acme.example", []string{"buyer@slow.example"}, "Quotation S00017").
		Received(nil).
		Attempt("smtp", "421 4.7.0 Try again later", trafficlog.RcptResult{Rcpt: "buyer@slow.example", Status: "temporary", Reply: mailjet.ParseReply("421 4.7.0 Try again later")}).
		Deferred("421 4.7.0 Try again later")
	add("retry", rt)

	fl := NewFlow(t.Add(30*time.Second), id(4), "sales@acme.example", []string{"nobody@client.example"}, "Order confirmation SO042").
		Received(nil).
		Attempt("smtp", "550 5.1.1 Recipient rejected", trafficlog.RcptResult{Rcpt: "nobody@client.example", Status: "permanent", Reply: mailjet.ParseReply("550 5.1.1 Recipient rejected")}).
		Failed("550 5.1.1 Recipient rejected", "permanent error from the upstream")
	add("failed", fl)

	sb := NewFlow(t.Add(40*time.Second), id(5), "hr@acme.example", []string{"candidate@mail.example"}, "Interview invitation").
		Received(nil).Attempt("sandbox", "250 sandbox", trafficlog.RcptResult{Rcpt: "candidate@mail.example", Status: "delivered", Reply: mailjet.ParseReply("250 sandbox")}).
		Sandboxed()
	add("sandbox", sb)

	s.Events = append(s.Events, Refused(t.Add(50*time.Second), "data", "sender_not_found",
		"550 5.7.1 Sender spoof@evil.example is not a verified sender", "spoof@evil.example", []string{"victim@client.example"}))
	return s
}
