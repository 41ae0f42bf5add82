package relay_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// sizedMessage is a message of exactly n bytes as a client sends it
// (CRLF lines, no leading dots: nothing to stuff).
func sizedMessage(n int) string {
	head := "From: john@example.com\r\nTo: client@example.org\r\nSubject: sized\r\n\r\n"
	line := strings.Repeat("x", 78) + "\r\n"
	full, rest := (n-len(head))/80, (n-len(head))%80
	switch {
	case rest == 1: // no line of one byte: lengthen one
		return head + strings.Repeat(line, full-1) + strings.Repeat("x", 79) + "\r\n"
	case rest > 1:
		return head + strings.Repeat(line, full) + strings.Repeat("x", rest-2) + "\r\n"
	}
	return head + strings.Repeat(line, full)
}

// replyLine is the reply line a go-smtp client got, as the relay records it.
func replyLine(err error) string {
	se, ok := err.(*smtp.SMTPError)
	if !ok {
		return ""
	}
	return fmt.Sprintf("%d %d.%d.%d %s", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2], se.Message)
}

// TestMessageSizeLimitIsExact: the advertised SIZE is the largest message
// accepted (RFC 1870), counted as the client sends it (the relay's own
// Received header does not count), with SIZE= announced or not.
func TestMessageSizeLimitIsExact(t *testing.T) {
	const limit = 2000
	e := newEnv(t, mjtest.StartTLS, func(c *config.Config) { c.SMTP.MaxMessageSize = limit })
	tests := []struct {
		name     string
		size     int
		announce bool
		want     int
	}{
		{"one byte less", limit - 1, false, 250},
		{"exactly the limit", limit, false, 250},
		{"one byte more", limit + 1, false, 552},
		{"exactly the limit, SIZE announced", limit, true, 250},
		{"one byte more, SIZE announced", limit + 1, true, 552},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg := sizedMessage(tc.size)
			if len(msg) != tc.size {
				t.Fatalf("test message of %d bytes, want %d", len(msg), tc.size)
			}
			c := e.client()
			defer c.Close()
			if got, ok := c.MaxMessageSize(); !ok || got != limit {
				t.Fatalf("EHLO advertises SIZE %d, want %d", got, limit)
			}
			var opts *smtp.MailOptions
			if tc.announce {
				opts = &smtp.MailOptions{Size: int64(tc.size)}
			}
			_, err := sendWith(c, "a@example.com", []string{"b@example.org"}, msg, opts)
			code := 250
			if err != nil {
				code = smtpCode(err)
			}
			if code != tc.want {
				t.Fatalf("%d bytes: %v, want %d", tc.size, err, tc.want)
			}
		})
	}
	e.waitDelivered(3)
	for _, m := range e.up.Received() {
		if i := strings.Index(string(m.Data), "From: john@example.com"); i < 0 || len(m.Data)-i > limit {
			t.Errorf("upstream got %d bytes of message (after the trace header), over the limit", len(m.Data)-i)
		}
	}
	// Odoo's own client: smtplib announces size= and sends the message.
	for _, tc := range []struct {
		size int
		want string
	}{{limit, "sent"}, {limit + 1, "SMTPSenderRefused"}} {
		res := replay(t, "send-sized", "127.0.0.1", port(e.plainAddr()), "starttls", odooUser, odooPass, fmt.Sprint(tc.size))
		if res["result"] != tc.want {
			t.Errorf("smtplib, %d bytes: %v, want %s", tc.size, res, tc.want)
		}
	}
}

// TestOversizedMailIsRecordedAsRefused: smtplib always announces size=, so
// Odoo's oversized mail is refused at MAIL; that refusal is the relay's,
// says what to change, and is recorded with the reply the client got and
// the announced size. A client that announces nothing is refused at the
// end of DATA, recorded the same way with the size it sent.
func TestOversizedMailIsRecordedAsRefused(t *testing.T) {
	const limit = 3 << 20
	e := newEnv(t, mjtest.StartTLS, func(c *config.Config) { c.SMTP.MaxMessageSize = limit })
	const big = limit + limit/2 // 4.5 MB
	res := replay(t, "send-sized", "127.0.0.1", port(e.plainAddr()), "starttls", odooUser, odooPass, fmt.Sprint(big))
	reply, _ := res["reply"].(string)
	if res["result"] != "SMTPSenderRefused" || !strings.HasPrefix(reply, "552 5.3.4 ") ||
		!strings.Contains(reply, "4.5 MB") || !strings.Contains(reply, "3 MB") || !strings.Contains(reply, "smtp.max_message_size") {
		t.Fatalf("smtplib got %v; want a 552 5.3.4 at MAIL naming both sizes and smtp.max_message_size", res)
	}
	c := e.client()
	defer c.Close()
	_, err := send(c, "a@example.com", []string{"b@example.org"}, sizedMessage(big))
	if !strings.HasPrefix(replyLine(err), "552 5.3.4 ") || !strings.Contains(err.Error(), "4.5 MB") {
		t.Fatalf("DATA of %d bytes: %v", big, err)
	}
	refused := e.traffic.Events(trafficlog.Refused)
	want := []struct {
		stage, reply string
	}{{"mail", reply}, {"data", replyLine(err)}}
	if len(refused) != len(want) {
		t.Fatalf("%d refused events, want %d: %+v", len(refused), len(want), refused)
	}
	for i, w := range want {
		ev := refused[i]
		if ev.Stage != w.stage || ev.Reply.String() != w.reply || ev.Reason != "message_too_large" || ev.Size != big {
			t.Errorf("refused event %d: stage %q, reason %q, size %d, reply %q;\nwant stage %q, size %d, reply %q",
				i, ev.Stage, ev.Reason, ev.Size, ev.Reply, w.stage, big, w.reply)
		}
	}
}

// TestBareCRBeforeEndOfData: "\r\r\n.\r\n" ends DATA like any CRLF.CRLF
// (go-smtp's reader used to miss it and wait for data_timeout); the message
// is refused for its bare CR, and the session goes on in step.
func TestBareCRBeforeEndOfData(t *testing.T) {
	e := newEnv(t, mjtest.StartTLS, nil)
	tests := []struct{ name, body string }{
		{"CR CR LF in a line", "text\r\r\n.\r\n"},
		{"CR CR LF as a line", "text\r\n\r\r\n.\r\n"},
		{"a line of a dot and CR CR LF", "text\r\n.\r\r\n.\r\n"},
		{"a dot and a bare CR starting a line", "text\r\n.\rX\r\n.\r\n"},
		{"three CRs", "text\r\r\r\n.\r\n"},
	}
	rc := dialRaw(t, e.plainAddr())
	defer rc.c.Close()
	rc.cmd("EHLO x")
	rc.auth()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc.cmd("MAIL FROM:<a@example.com>")
			rc.cmd("RCPT TO:<b@example.org>")
			if r := rc.cmd("DATA"); !strings.HasPrefix(r, "354") {
				t.Fatalf("DATA: %s", r)
			}
			rc.c.Write([]byte("Subject: cr\r\n\r\n" + tc.body))
			if r := rc.reply(); !strings.HasPrefix(r, "550 5.6.0 ") {
				t.Fatalf("end of DATA: %q, want 550 5.6.0 (bare CR)", r)
			}
			if r := rc.cmd("NOOP"); !strings.HasPrefix(r, "250") {
				t.Fatalf("NOOP after the refusal: %q", r)
			}
		})
	}
	rc.cmd("MAIL FROM:<a@example.com>")
	rc.cmd("RCPT TO:<b@example.org>")
	rc.cmd("DATA")
	rc.c.Write([]byte(testMessage("after-bare-cr") + ".\r\n"))
	if r := rc.reply(); !strings.HasPrefix(r, "250") {
		t.Fatalf("the next message on the connection: %q", r)
	}
	if n := len(e.traffic.Events(trafficlog.Received)); n != 1 {
		t.Errorf("%d messages received, want only the clean one", n)
	}
}
