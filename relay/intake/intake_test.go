package intake_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/mjrelay/mjrelay/policy"
	"github.com/mjrelay/mjrelay/relay/intake"
	"github.com/mjrelay/mjrelay/relay/spool"
	"github.com/mjrelay/mjrelay/relay/spool/spooltest"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// mailing is an Odoo mass mailing as the SMTP session hands it in.
const mailing = "From: News <news@example.com>\r\nTo: b@example.org\r\nSubject: =?utf-8?q?Offre_sp=C3=A9ciale?=\r\n" +
	"Message-Id: <42@odoo>\r\nList-Unsubscribe: <https://erp.example.com/mailing/12/unsubscribe_oneclick?x=1>\r\n" +
	"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\nHello\r\n"

// inBuffer is msg read into a buffer after the reserved room, as the SMTP
// session reads it.
func inBuffer(msg string) []byte { return append(make([]byte, intake.TraceRoom), msg...) }

func submission(buf []byte) intake.Submission {
	return intake.Submission{Login: "odoo", Client: "192.0.2.7:4321", IP: "192.0.2.7", Helo: "odoo.example", TLS: true,
		From: "bounce@example.com", To: []string{"b@example.org"}, Message: buf[intake.TraceRoom:], Buffer: buf}
}

// TestAccept: the message is queued with the Received header in front,
// written into the room reserved in the buffer (the message is not
// copied); its envelope has its lane and campaign; it is recorded as
// received, with a copy of the bytes when the buffer is used again.
func TestAccept(t *testing.T) {
	for _, recycled := range []bool{true, false} {
		sp := spooltest.Open(t, "", spool.Options{})
		traffic := &trafficlog.Memory{}
		in := intake.New(intake.Options{Hostname: "relay.test", CampaignFromMailing: true, WantBodies: true},
			intake.Deps{Queue: sp, Traffic: traffic})
		buf := inBuffer(mailing)
		sub := submission(buf)
		sub.Recycled = recycled
		rec, refused := in.Accept(context.Background(), sub)
		if refused != nil {
			t.Fatalf("refused: %s", refused.Reply())
		}
		it, err := sp.Get(rec.ID)
		if err != nil {
			t.Fatal(err)
		}
		env := it.Envelope
		if rec.Class != "bulk" || env.Class != "bulk" || env.ClassRule != "list-unsubscribe-post" ||
			env.Campaign != "odoo-erp-example-com-mailing-12" || env.User != "odoo" || env.Client != "192.0.2.7:4321" ||
			env.Helo != "odoo.example" || env.From != "bounce@example.com" || strings.Join(env.To, ",") != "b@example.org" ||
			env.HeaderFrom != "news@example.com" || env.Subject != "Offre spéciale" || env.MessageID != "<42@odoo>" || env.UTF8 {
			t.Fatalf("receipt %+v, envelope %+v", rec, env)
		}
		body, err := sp.Body(rec.ID)
		if err != nil {
			t.Fatal(err)
		}
		trace := "Received: from odoo.example ([192.0.2.7])\r\n\tby relay.test (mjrelay) with ESMTPSA id " + rec.ID + "\r\n\tfor <b@example.org>;\r\n\t"
		if !strings.HasPrefix(string(body), trace) || !strings.HasSuffix(string(body), "\r\n"+mailing) || env.Size != int64(len(body)) {
			t.Fatalf("stored %q (size %d)", body, env.Size)
		}
		start := intake.TraceRoom - (len(body) - len(mailing))
		if !bytes.Equal(buf[start:], body) {
			t.Fatalf("the Received header is not in the buffer's room, which ends %q", buf[intake.TraceRoom-40:intake.TraceRoom])
		}
		got := traffic.Events(trafficlog.Received)
		if len(got) != 1 {
			t.Fatalf("%d received events", len(got))
		}
		e := got[0]
		if e.ID != rec.ID || e.User != "odoo" || e.Client != "192.0.2.7:4321" || !e.TLS || e.Class != "bulk" ||
			e.HeaderFrom != "news@example.com" || e.Size != env.Size || !bytes.Equal(e.Raw, body) {
			t.Fatalf("received event %+v", e)
		}
		if shared := &e.Raw[0] == &buf[start]; shared == recycled {
			t.Errorf("recycled buffer %v: the event's bytes share it: %v", recycled, shared)
		}
	}
}

// TestAcceptCopiesWithoutRoom: a message that is not in a buffer with room
// (a bare-LF message the session normalized into a copy) is stored the same.
func TestAcceptCopiesWithoutRoom(t *testing.T) {
	sp := spooltest.Open(t, "", spool.Options{})
	in := intake.New(intake.Options{Hostname: "relay.test"}, intake.Deps{Queue: sp})
	sub := submission(inBuffer(mailing))
	sub.Message = []byte(mailing)
	rec, refused := in.Accept(context.Background(), sub)
	if refused != nil {
		t.Fatal(refused.Reply())
	}
	body, err := sp.Body(rec.ID)
	if err != nil || !strings.HasPrefix(string(body), "Received: from odoo.example") || !strings.HasSuffix(string(body), "\r\n"+mailing) {
		t.Fatalf("stored %q, %v", body, err)
	}
	if bytes.Contains(sub.Buffer[:intake.TraceRoom], []byte("Received")) {
		t.Error("the header was written into a buffer the message is not in")
	}
}

// TestRefusals: what the intake refuses, with the reply and what the
// traffic log is to record; nothing refused is queued or recorded as
// received.
func TestRefusals(t *testing.T) {
	rule, err := policy.New(policy.Options{Logins: []policy.Login{{Username: "odoo", AllowedFrom: []string{"*@example.com"}}}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	const fullText = "Insufficient system storage: the relay's queue is full, try again later"
	other := strings.Replace(mailing, "news@example.com", "news@other.example", 1)
	tests := []struct {
		name    string
		full    bool // the queue holds its one message
		closed  bool
		mail    bool // CheckSender, else Accept
		from    string
		message string
		reply   string // code and enhanced code
		want    intake.Refusal
	}{
		{name: "queue full at MAIL", full: true, mail: true, from: "bounce@example.com", reply: "452 4.3.1",
			want: intake.Refusal{Code: 452, Enhanced: [3]int{4, 3, 1}, Text: fullText, Stage: "mail", Reason: "queue_full"}},
		{name: "queue full at the end of the data", full: true, from: "bounce@example.com", message: mailing, reply: "452 4.3.1",
			want: intake.Refusal{Code: 452, Enhanced: [3]int{4, 3, 1}, Text: fullText, Stage: "data", Reason: "queue_full", From: "bounce@example.com"}},
		{name: "queue closed", closed: true, from: "bounce@example.com", message: mailing, reply: "451 4.3.0",
			want: intake.Refusal{Code: 451, Enhanced: [3]int{4, 3, 0}, Text: "Temporary local problem storing the message, try again later",
				Stage: "data", Reason: "spool_error", From: "bounce@example.com"}},
		{name: "envelope sender not allowed", mail: true, from: "bounce@other.example", reply: "550 5.7.1",
			want: intake.Refusal{Code: 550, Enhanced: [3]int{5, 7, 1}, Stage: "mail", Reason: "not_allowed_for_login", From: "bounce@other.example"}},
		{name: "header From not allowed", from: "bounce@example.com", message: other, reply: "550 5.7.1",
			want: intake.Refusal{Code: 550, Enhanced: [3]int{5, 7, 1}, Stage: "data", Reason: "not_allowed_for_login", From: "bounce@example.com",
				Header: intake.Header{From: "news@other.example", Subject: "Offre spéciale", MessageID: "<42@odoo>",
					ListUnsubscribe: "<https://erp.example.com/mailing/12/unsubscribe_oneclick?x=1>", ListUnsubscribePost: true,
					OneClick: "https://erp.example.com/mailing/12/unsubscribe_oneclick?x=1"},
				Size: int64(len(other))}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sp := spooltest.Open(t, "", spool.Options{MaxMessages: 1})
			traffic := &trafficlog.Memory{}
			in := intake.New(intake.Options{Hostname: "relay.test"}, intake.Deps{Queue: sp, Policy: rule, Traffic: traffic})
			queued := 0
			if tc.full {
				if _, r := in.Accept(context.Background(), submission(inBuffer(mailing))); r != nil {
					t.Fatal(r.Reply())
				}
				queued = 1
			}
			if tc.closed {
				sp.Close()
			}
			var got *intake.Refusal
			if tc.mail {
				_, got = in.CheckSender(context.Background(), intake.Sender{Login: "odoo", Client: "192.0.2.7:4321", From: tc.from})
			} else {
				sub := submission(inBuffer(tc.message))
				sub.From = tc.from
				_, got = in.Accept(context.Background(), sub)
			}
			if got == nil {
				t.Fatal("accepted")
			}
			if tc.want.Reason == "not_allowed_for_login" {
				if !strings.HasPrefix(got.Text, "Login odoo may not use the ") {
					t.Errorf("text %q", got.Text)
				}
				tc.want.Text = got.Text // the policy's own (see its tests)
			}
			if *got != tc.want {
				t.Fatalf("refusal\n%+v\nwant\n%+v", *got, tc.want)
			}
			if got.Reply().String() != tc.reply+" "+got.Text || got.Temporary() != strings.HasPrefix(tc.reply, "4") {
				t.Errorf("reply %q, temporary %v", got.Reply(), got.Temporary())
			}
			if !tc.closed && sp.Stats().Messages != queued || len(traffic.Events(trafficlog.Received)) != queued {
				t.Errorf("refused, yet queued or recorded as received")
			}
		})
	}
}
