package relay_test

import (
	"bytes"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

func TestDeliversThroughEachUpstreamMode(t *testing.T) {
	for _, mode := range []mjtest.SMTPMode{mjtest.StartTLS, mjtest.ImplicitTLS} {
		e := newEnv(t, mode, nil)
		c := e.client()
		msg := testMessage("mode")
		reply, err := send(c, "bounce@example.com", []string{"client@example.org", "other@example.net"}, msg)
		if err != nil {
			t.Fatal(err)
		}
		c.Quit()
		id := queueID(reply)
		if !strings.HasPrefix(reply, "2.0.0 OK queued as ") || len(id) != 20 {
			t.Fatalf("reply %q", reply)
		}
		got := e.waitDelivered(1)[0]
		if !got.TLS || got.User != apiKey || got.From != "bounce@example.com" || strings.Join(got.Rcpts, ",") != "client@example.org,other@example.net" {
			t.Errorf("upstream got %+v", got)
		}
		// Unchanged but for the Mailjet hints and one Received header on top.
		want := "X-Mailjet-Prio: 2\r\nX-MJ-CustomID: " + id + "\r\nReceived: from "
		if !bytes.HasSuffix(got.Data, []byte(msg)) || !bytes.HasPrefix(got.Data, []byte(want)) ||
			!bytes.Contains(got.Data[:len(got.Data)-len(msg)], []byte("by relay.test (mjrelay) with ESMTPSA id "+id)) {
			t.Errorf("forwarded bytes:\n%s", got.Data)
		}
		e.waitFor("delivered event", func() bool { return len(e.traffic.Events(trafficlog.Delivered)) == 1 })
		d := e.traffic.Events(trafficlog.Delivered)[0]
		if d.ID != id || d.UpstreamID != got.QueueID || d.Subject != "mode" || d.HeaderFrom != "john@example.com" {
			t.Errorf("delivered event %+v (upstream queue id %s)", d, got.QueueID)
		}
	}
}

func TestImplicitTLSListenerAndConnectionReuse(t *testing.T) {
	e := newEnv(t, mjtest.StartTLS, nil)
	c, err := smtp.DialTLS(e.tlsAddr(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(sasl.NewLoginClient(odooUser, odooPass)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if _, err := send(c, "bounce@example.com", []string{"client@example.org"}, testMessage("tls")); err != nil {
			t.Fatal(err)
		}
	}
	c.Quit()
	got := e.waitDelivered(5)
	if e.up.Connections() > e.cfg.Routes.Transactional.Concurrency+e.cfg.Routes.Bulk.Concurrency {
		t.Errorf("%d upstream connections for 5 messages; expected reuse", e.up.Connections())
	}
	reused := 0
	for _, g := range got {
		if g.Reused {
			reused++
		}
	}
	if reused == 0 {
		t.Errorf("no message reused an upstream connection")
	}
}

func TestRefusals(t *testing.T) {
	e := newEnv(t, mjtest.StartTLS, func(c *config.Config) {
		c.SMTP.MaxMessageSize = 2000
		c.SMTP.MaxRecipients = 2
	})
	tests := []struct {
		name   string
		run    func(c *smtp.Client) error
		code   int
		reason string
	}{
		{"too large", func(c *smtp.Client) error {
			_, err := send(c, "a@example.com", []string{"b@example.org"}, testMessage("big")+strings.Repeat(strings.Repeat("x", 70)+"\r\n", 50))
			return err
		}, 552, "message_too_large"},
		{"too many recipients", func(c *smtp.Client) error {
			_, err := send(c, "a@example.com", []string{"b@example.org", "c@example.org", "d@example.org"}, testMessage("many"))
			return err
		}, 550, "too_many_recipients"},
		{"unqualified recipient", func(c *smtp.Client) error {
			_, err := send(c, "a@example.com", []string{"root@localhost"}, testMessage("x"))
			return err
		}, 550, "bad_recipient"},
		{"percent hack", func(c *smtp.Client) error {
			_, err := send(c, "a@example.com", []string{"user%victim.example@example.org"}, testMessage("x"))
			return err
		}, 550, "bad_recipient"},
		{"bad sender", func(c *smtp.Client) error {
			_, err := send(c, "a@nodot", []string{"b@example.org"}, testMessage("x"))
			return err
		}, 501, "bad_sender_syntax"},
		{"line too long", func(c *smtp.Client) error {
			_, err := send(c, "a@example.com", []string{"b@example.org"}, testMessage("long")+strings.Repeat("y", 2500)+"\r\nMAIL FROM:<smuggled@example.com>\r\n")
			return err
		}, 500, "line_too_long"},
		{"null sender", func(c *smtp.Client) error {
			_, err := send(c, "", []string{"b@example.org"}, testMessage("x"))
			return err
		}, 550, "null_sender"},
		{"bare CR", func(c *smtp.Client) error {
			_, err := send(c, "a@example.com", []string{"b@example.org"}, testMessage("cr")+"a\rMAIL FROM:<x@y.z>\r\n")
			return err
		}, 550, "bare_cr"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := e.client()
			defer c.Close()
			err := tc.run(c)
			if smtpCode(err) != tc.code {
				t.Fatalf("got %v, want code %d", err, tc.code)
			}
			var last *trafficlog.Event
			for _, ev := range e.traffic.Events(trafficlog.Refused) {
				if ev.Reason == tc.reason {
					last = &ev
				}
			}
			if last == nil {
				t.Fatalf("no refused event with reason %s", tc.reason)
			}
			if last.Reply.String() != replyLine(err) {
				t.Errorf("recorded reply %q; the client got %q", last.Reply, replyLine(err))
			}
		})
	}
	// The connection keeps working after a refusal, and nothing refused was queued.
	c := e.client()
	if _, err := send(c, "a@example.com", []string{"b@example.org"}, testMessage("fine")); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	if got := e.waitDelivered(1); len(got) != 1 {
		t.Fatalf("upstream got %d messages", len(got))
	}
}

func TestAuthRequiredAndBadPassword(t *testing.T) {
	e := newEnv(t, mjtest.StartTLS, nil)
	c, err := smtp.DialStartTLS(e.plainAddr(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("a@example.com", nil); smtpCode(err) != 530 {
		t.Fatalf("MAIL without AUTH: %v, want 530", err)
	}
	if err := c.Auth(sasl.NewPlainClient("", odooUser, "wrong")); smtpCode(err) != 535 {
		t.Fatalf("bad password: %v, want 535", err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "nobody", odooPass)); smtpCode(err) != 535 {
		t.Fatalf("unknown user: %v, want 535", err)
	}
	if n := len(e.traffic.Events(trafficlog.Refused)); n != 3 {
		t.Errorf("%d refusals recorded, want 3", n)
	}
	for _, ev := range e.traffic.Events("") {
		if strings.Contains(ev.Reply.String()+ev.Reason+ev.User, "wrong") {
			t.Errorf("a password reached the traffic log: %+v", ev)
		}
	}
}

func TestTrustedNetworkNeedsNoAuth(t *testing.T) {
	e := newEnv(t, mjtest.StartTLS, func(c *config.Config) { c.SMTP.TrustedNetworks = []string{"127.0.0.1/32"} })
	c, err := smtp.Dial(e.plainAddr())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := send(c, "a@example.com", []string{"b@example.org"}, testMessage("trusted")); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	e.waitDelivered(1)
}

func TestUpstreamFailures(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(up *mjtest.SMTPRelay)
		wantAtUp   int
		wantEvents map[trafficlog.Kind]int
	}{
		{"4xx then accepted", func(up *mjtest.SMTPRelay) {
			up.SetDataFault(mjtest.Fault{Code: 451, Enh: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}, 2)
		}, 1, map[trafficlog.Kind]int{trafficlog.Deferred: 2, trafficlog.Delivered: 1}},
		{"5xx is final", func(up *mjtest.SMTPRelay) {
			up.SetDataFault(mjtest.Fault{Code: 550, Enh: smtp.EnhancedCode{5, 7, 1}, Message: "rejected"}, -1)
		}, 0, map[trafficlog.Kind]int{trafficlog.Failed: 1, trafficlog.Deferred: 0}},
		{"one recipient refused", func(up *mjtest.SMTPRelay) {
			up.SetRcptFault("bad@example.org", mjtest.Fault{Code: 550, Enh: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"})
		}, 1, map[trafficlog.Kind]int{trafficlog.Delivered: 1, trafficlog.Failed: 1}},
		{"one recipient deferred", func(up *mjtest.SMTPRelay) {
			up.SetRcptFault("bad@example.org", mjtest.Fault{Code: 452, Enh: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"})
		}, 1, map[trafficlog.Kind]int{trafficlog.Delivered: 1, trafficlog.Deferred: 2}},
		{"connection dropped at DATA", func(up *mjtest.SMTPRelay) {
			up.SetDropAtData(true)
			go func() { time.Sleep(300 * time.Millisecond); up.SetDropAtData(false) }()
		}, 1, map[trafficlog.Kind]int{trafficlog.Delivered: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, mjtest.StartTLS, func(c *config.Config) { c.Queue.MaxLifetime = config.Duration(time.Second) })
			tc.setup(e.up)
			c := e.client()
			if _, err := send(c, "a@example.com", []string{"good@example.org", "bad@example.org"}, testMessage("fail")); err != nil {
				t.Fatalf("the client must get 250 whatever the upstream does: %v", err)
			}
			c.Quit()
			e.waitFor("the message to leave the queue", func() bool { return e.r.Queue.Stats().Messages == 0 })
			if got := len(e.up.Received()); got != tc.wantAtUp {
				t.Errorf("upstream accepted %d, want %d", got, tc.wantAtUp)
			}
			for kind, n := range tc.wantEvents {
				if got := len(e.traffic.Events(kind)); got != n && !(kind == trafficlog.Deferred && n > 0 && got >= n) {
					t.Errorf("%d %s events, want %d", got, kind, n)
				}
			}
		})
	}
}

func TestNoPlaintextFallback(t *testing.T) {
	e := newEnv(t, mjtest.NoTLS, nil)
	c := e.client()
	if _, err := send(c, "a@example.com", []string{"b@example.org"}, testMessage("downgrade")); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	e.waitFor("a deferral", func() bool { return len(e.traffic.Events(trafficlog.Deferred)) > 0 })
	if n := len(e.up.Received()); n != 0 {
		t.Fatalf("%d messages went out without TLS", n)
	}
	if d := e.traffic.Events(trafficlog.Deferred)[0]; !strings.Contains(d.Reply.String(), "STARTTLS") {
		t.Errorf("deferral reason %q does not mention STARTTLS", d.Reply)
	}
}

func TestQueueSurvivesRestart(t *testing.T) {
	e := newEnv(t, mjtest.StartTLS, nil)
	e.up.SetMailFault(mjtest.Fault{Code: 421, Enh: smtp.EnhancedCode{4, 4, 2}, Message: "down"})
	c := e.client()
	var ids []string
	for i := 0; i < 20; i++ {
		reply, err := send(c, "a@example.com", []string{"b@example.org"}, testMessage("restart"))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, queueID(reply))
	}
	c.Quit()
	e.stop()
	e.up.SetMailFault(mjtest.Fault{})
	e.start()
	got := e.waitDelivered(20)
	seen := map[string]bool{}
	for _, g := range got {
		for _, id := range ids {
			if bytes.Contains(g.Data, []byte("id "+id)) {
				seen[id] = true
			}
		}
	}
	if len(seen) != 20 {
		t.Fatalf("%d of 20 acknowledged messages arrived after the restart", len(seen))
	}
}

func TestSandboxSendsNothing(t *testing.T) {
	e := newEnv(t, mjtest.StartTLS, sandbox)
	c := e.client()
	if _, err := send(c, "a@example.com", []string{"b@example.org"}, testMessage("sandbox")); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	e.waitFor("sandboxed event", func() bool { return len(e.traffic.Events(trafficlog.Sandboxed)) == 1 })
	e.waitFor("an empty queue", func() bool { return e.r.Queue.Stats().Messages == 0 })
	if e.up.Connections() != 0 || len(e.up.Received()) != 0 {
		t.Fatalf("sandbox contacted the upstream")
	}
}

func TestStalledDataClosesAndQueuesNothing(t *testing.T) {
	e := newEnv(t, mjtest.StartTLS, func(c *config.Config) { c.SMTP.DataTimeout = config.Duration(300 * time.Millisecond) })
	c := e.client()
	defer c.Close()
	if err := c.Mail("a@example.com", nil); err != nil {
		t.Fatal(err)
	}
	c.Rcpt("b@example.org", nil)
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	// Half a message, then nothing; what follows would be read as commands
	// if the connection stayed open (go-smtp#196).
	w.Write([]byte("Subject: stalled\r\n\r\npart"))
	time.Sleep(600 * time.Millisecond)
	w.Write([]byte("\r\nMAIL FROM:<smuggled@example.com>\r\n.\r\n"))
	if err := w.Close(); err == nil {
		t.Fatal("the stalled transaction was accepted")
	}
	e.waitFor("an aborted event", func() bool { return len(e.traffic.Events(trafficlog.Aborted)) == 1 })
	if ev := e.traffic.Events(trafficlog.Aborted)[0]; !strings.Contains(ev.Reason, "timeout") {
		t.Errorf("aborted reason %q", ev.Reason)
	}
	if n := len(e.traffic.Events(trafficlog.Received)); n != 0 || e.r.Queue.Stats().Messages != 0 {
		t.Fatalf("%d messages received after a stalled DATA", n)
	}
}
