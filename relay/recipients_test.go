package relay_test

import (
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// shows runs testdata/odoo_shows.py: what Odoo shows for the relay's
// replies.
func shows(t *testing.T, args ...string) map[string]any {
	t.Helper()
	return runPython(t, "testdata/odoo_shows.py", args...)
}

// TestNoRecipientDroppedSilently: a transaction with one bad and one good
// recipient gets 250 to both RCPTs and is refused whole at the end of DATA
// with the bad one named; nothing is queued. Through Odoo's smtplib calls
// the mail is failed with that text, not marked sent with a recipient
// lost.
func TestNoRecipientDroppedSilently(t *testing.T) {
	e := newEnv(t, mjtest.StartTLS, nil)
	c := e.client()
	defer c.Close()
	if err := c.Mail("bounce@example.com", nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"client@example.org", "user%victim.example@example.org"} {
		if err := c.Rcpt(r, nil); err != nil {
			t.Fatalf("RCPT %s: %v: a subset of recipients refused", r, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(testMessage("two recipients")))
	err = w.Close()
	se, ok := err.(*smtp.SMTPError)
	if !ok || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 1, 3}) ||
		!strings.Contains(se.Message, "<user%victim.example@example.org> (routing characters") || strings.Contains(se.Message, "client@example.org") {
		t.Fatalf("end of DATA: %v", err)
	}
	refused := e.traffic.Events(trafficlog.Refused)
	if len(refused) != 1 || refused[0].Stage != "data" || refused[0].Reason != "bad_recipient" || len(refused[0].To) != 2 ||
		refused[0].Subject != "two recipients" {
		t.Fatalf("refused events %+v", refused)
	}

	// The Odoo way: smtplib's send_message raises, the mail is in
	// exception with the relay's text.
	res := shows(t, "send", "127.0.0.1", port(e.plainAddr()), "starttls", odooUser, odooPass, "bounce@example.com",
		"client@example.org,root@localhost")
	if res["state"] != "exception" || !strings.Contains(res["shown"].(string), "SMTPDataError: (550, b'5.1.3 Message refused, sent to no one: a recipient address is not valid: <root@localhost>") {
		t.Fatalf("Odoo: %v", res)
	}
	if st := e.r.Queue.Stats(); st.Messages != 0 || len(e.traffic.Events(trafficlog.Received)) != 0 || len(e.up.Received()) != 0 {
		t.Fatalf("something was queued or sent: %+v", st)
	}
}

// TestMalformedRecipientPath: a RCPT whose path go-smtp cannot parse gets
// 250 too (the session judges it), and the message is refused whole.
func TestMalformedRecipientPath(t *testing.T) {
	e := newEnv(t, mjtest.StartTLS, func(c *config.Config) { c.SMTP.TrustedNetworks = []string{"127.0.0.1/32"} })
	conn, err := net.Dial("tcp", e.plainAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tp := textproto.NewConn(conn)
	cmd := func(line string, want int) string {
		t.Helper()
		if line != "" {
			tp.PrintfLine("%s", line)
		}
		_, msg, err := tp.ReadResponse(want)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		return msg
	}
	cmd("", 220)
	cmd("EHLO odoo.test", 250)
	cmd("MAIL FROM:<bounce@example.com>", 250)
	cmd("RCPT TO:<client@example.org>", 250)
	cmd("RCPT TO:<jean dupont@example.org>", 250)
	cmd("RCPT TO:<a,b@example.org>", 250)
	cmd("DATA", 354)
	w := tp.DotWriter()
	fmt.Fprint(w, testMessage("malformed"))
	w.Close()
	code, msg, _ := tp.ReadResponse(0)
	if code != 550 || !strings.Contains(msg, "2 recipient addresses are not valid: <jean dupont@example.org> (not an address") ||
		!strings.Contains(msg, "<a,b@example.org> (not an address") {
		t.Fatalf("end of DATA: %d %s", code, msg)
	}
}

// TestRecipientLimitPerMessage: more recipients than smtp.max_recipients
// are all accepted at RCPT and the message is refused whole at the end of
// DATA; the default limit (1,000) lets 150 recipients through, all of
// them delivered.
func TestRecipientLimitPerMessage(t *testing.T) {
	if config.Default().SMTP.MaxRecipients != 1000 {
		t.Fatalf("default max_recipients %d, want 1000 (Postfix's smtpd_recipient_limit)", config.Default().SMTP.MaxRecipients)
	}
	e := newEnv(t, mjtest.StartTLS, nil)
	var rcpts []string
	for i := range 150 {
		rcpts = append(rcpts, fmt.Sprintf("client%d@example.org", i))
	}
	c := e.client()
	if _, err := send(c, "bounce@example.com", rcpts, testMessage("150")); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	got := e.waitDelivered(1)
	if len(got) != 1 || len(got[0].Rcpts) != 150 {
		t.Fatalf("upstream got %d messages, the first for %d recipients", len(got), len(got[0].Rcpts))
	}
	e.waitFor("150 recipients delivered", func() bool {
		n := 0
		for _, ev := range e.traffic.Events(trafficlog.Delivered) {
			n += len(ev.To)
		}
		return n == 150
	})

	e.stop()
	e.cfg.SMTP.MaxRecipients = 100
	e.start()
	c = e.client()
	defer c.Close()
	_, err := send(c, "bounce@example.com", rcpts, testMessage("too many"))
	se, ok := err.(*smtp.SMTPError)
	if !ok || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 5, 3}) ||
		!strings.Contains(se.Message, "150 recipients, at most 100 per message (smtp.max_recipients)") {
		t.Fatalf("150 recipients over a limit of 100: %v", err)
	}
}
