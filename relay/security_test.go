package relay_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// rawConn is a scripted SMTP client on a plain socket.
type rawConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	rc := &rawConn{t: t, c: c, r: bufio.NewReader(c)}
	rc.reply() // greeting
	return rc
}

// reply reads one (possibly multi-line) reply and returns its last line.
func (rc *rawConn) reply() string {
	for {
		line, err := rc.r.ReadString('\n')
		if err != nil {
			return "EOF"
		}
		if len(line) < 4 || line[3] != '-' {
			return strings.TrimRight(line, "\r\n")
		}
	}
}

func (rc *rawConn) cmd(s string) string {
	rc.c.Write([]byte(s + "\r\n"))
	return rc.reply()
}

func (rc *rawConn) auth() {
	ir := base64.StdEncoding.EncodeToString([]byte("\x00" + odooUser + "\x00" + odooPass))
	if r := rc.cmd("AUTH PLAIN " + ir); !strings.HasPrefix(r, "235") {
		rc.t.Fatalf("AUTH: %s", r)
	}
}

func TestNoRelayWithoutAuth(t *testing.T) {
	e := newEnv(t, mjtest.StartTLS, nil)
	tests := []struct{ from, rcpt string }{
		{"<a@example.com>", "<victim@target.example>"},
		{"<a@example.com>", "<@relay.example:victim@target.example>"},
		{"<a@example.com>", "<victim%target.example@example.org>"},
		{"<>", "<victim@target.example>"},
	}
	for _, tc := range tests {
		rc := dialRaw(t, e.plainAddr())
		rc.cmd("EHLO attacker.example")
		if r := rc.cmd("MAIL FROM:" + tc.from); !strings.HasPrefix(r, "530 5.7.0") {
			t.Errorf("MAIL FROM:%s without AUTH: %s", tc.from, r)
		}
		if r := rc.cmd("RCPT TO:" + tc.rcpt); !strings.HasPrefix(r, "5") {
			t.Errorf("RCPT TO:%s without AUTH: %s", tc.rcpt, r)
		}
		if r := rc.cmd("DATA"); !strings.HasPrefix(r, "5") {
			t.Errorf("DATA without AUTH: %s", r)
		}
		rc.c.Close()
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(e.traffic.Events(trafficlog.Received)); n != 0 {
		t.Fatalf("%d messages accepted without AUTH", n)
	}
}

// TestBruteForceIsBoundedAndRecorded: three failures on one connection
// close it, each is recorded; Odoo retrying the same wrong password on
// new connections is one failure, not a growing penalty, and once the
// password is right Odoo logs in (the rate bound across connections is
// tested in relay/smtpd and relay/authlimit).
func TestBruteForceIsBoundedAndRecorded(t *testing.T) {
	e := newEnv(t, mjtest.StartTLS, nil)
	plain := func(pass string) string {
		return "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00odoo\x00"+pass))
	}
	rc := dialRaw(t, e.plainAddr())
	rc.cmd("EHLO x")
	for i := 0; i < 3; i++ {
		if r := rc.cmd(plain(fmt.Sprint("guess", i))); !strings.HasPrefix(r, "535 5.7.8") {
			t.Fatalf("failure %d: %s", i+1, r)
		}
	}
	if r := rc.cmd("NOOP"); !strings.HasPrefix(r, "421") && r != "EOF" {
		t.Errorf("connection still open after 3 failed logins: %s", r)
	}
	rc.c.Close()
	if n := len(e.traffic.Events(trafficlog.Refused)); n != 3 {
		t.Errorf("%d refusals in the traffic log, want 3", n)
	}
	for i := 0; i < 20; i++ {
		rc := dialRaw(t, e.plainAddr())
		rc.cmd("EHLO x")
		if r := rc.cmd(plain("old-password")); !strings.HasPrefix(r, "535 5.7.8") {
			t.Fatalf("Odoo's retry %d with the old password: %s", i, r)
		}
		rc.c.Close()
	}
	rc = dialRaw(t, e.plainAddr())
	defer rc.c.Close()
	rc.cmd("EHLO x")
	rc.auth()
	for _, ev := range e.traffic.Events(trafficlog.Refused) {
		if ev.Reason != "bad_credentials" {
			t.Errorf("refusal %s: %s", ev.Reason, ev.Reply)
		}
	}
}

func TestSmugglingProbes(t *testing.T) {
	e := newEnv(t, mjtest.StartTLS, nil)
	smuggled := "MAIL FROM:<smuggled@evil.example>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n"
	probes := []string{"\n.\r\n", "\r\n.\n", "\r.\r\n", "\n.\n", "\r\n.\r", "\r"}
	for i, p := range probes {
		rc := dialRaw(t, e.plainAddr())
		rc.cmd("EHLO x")
		rc.auth()
		rc.cmd("MAIL FROM:<a@example.com>")
		rc.cmd("RCPT TO:<b@example.org>")
		if r := rc.cmd("DATA"); !strings.HasPrefix(r, "354") {
			t.Fatalf("DATA: %s", r)
		}
		rc.c.Write([]byte(fmt.Sprintf("Subject: probe %d\r\n\r\nbody%s%s", i, p, smuggled)))
		r1 := rc.reply()
		r2 := rc.cmd("NOOP")
		rc.c.Close()
		t.Logf("probe %q: %s / %s", p, r1, r2)
	}
	time.Sleep(200 * time.Millisecond)
	for _, ev := range e.traffic.Events(trafficlog.Received) {
		if ev.From != "a@example.com" || strings.Contains(ev.Subject, "smuggled") {
			t.Errorf("a smuggled message was accepted: %+v", ev)
		}
	}
	if n := len(e.traffic.Events(trafficlog.Received)); n > len(probes) {
		t.Errorf("%d messages from %d transactions", n, len(probes))
	}
	// What was accepted goes upstream with the smuggled text still inside
	// the one message, dot-stuffed: never as a second message.
	for _, m := range e.up.Received() {
		if m.From != "a@example.com" || len(m.Rcpts) != 1 || m.Rcpts[0] != "b@example.org" {
			t.Errorf("upstream got %s → %v", m.From, m.Rcpts)
		}
	}
}

func TestInjectionThroughAddresses(t *testing.T) {
	e := newEnv(t, mjtest.StartTLS, nil)
	rc := dialRaw(t, e.plainAddr())
	defer rc.c.Close()
	rc.cmd("EHLO x")
	rc.auth()
	// Recipients the relay refuses get 250 and the whole message is
	// refused at the end of DATA (never some recipients only); go-smtp
	// refuses parameters it does not take.
	tests := []struct{ cmd, want string }{
		{"MAIL FROM:<a@example.com> BODY=8BITMIME", "250"},
		{`RCPT TO:<"x;(y)for_<z@evil>"@example.org>`, "250"},
		{`RCPT TO:<"x y\r\nBcc: z@evil"@example.org>`, "250"},
		{"RCPT TO:<a@example.org>\tX-Injected: yes", "5"},
		{"RCPT TO:<a@exa mple.org>", "250"},
		{"RCPT TO:<a@example.org> NOTIFY=NEVER", "5"},
	}
	for _, tc := range tests {
		if r := rc.cmd(tc.cmd); !strings.HasPrefix(r, tc.want) {
			t.Errorf("%q: %s, want %s…", tc.cmd, r, tc.want)
		}
	}
	rc.cmd("DATA")
	rc.c.Write([]byte("Subject: inj\r\n\r\nhi\r\n.\r\n"))
	if r := rc.reply(); !strings.HasPrefix(r, "550 5.1.3 Message refused, sent to no one: 2 recipient addresses are not valid: <x yrnBcc: z@evil@example.org>") ||
		strings.ContainsAny(r, "\r\n") {
		t.Fatalf("end of DATA: %q", r)
	}
	rc.cmd("MAIL FROM:<a@example.com> BODY=8BITMIME")
	if r := rc.cmd(`RCPT TO:<"x;(y)for_<z@evil>"@example.org>`); !strings.HasPrefix(r, "250") {
		t.Fatalf("RCPT: %s", r)
	}
	rc.cmd("DATA")
	rc.c.Write([]byte("Subject: inj\r\n\r\nhi\r\n.\r\n"))
	if r := rc.reply(); !strings.HasPrefix(r, "250") {
		t.Fatalf("end of DATA: %s", r)
	}
	got := e.waitDelivered(1)[0]
	hdr := got.Data[:bytes.Index(got.Data, []byte("Subject: inj"))]
	// The quoted local part cannot add a header field or a "for" clause
	// of its own: every line is one of ours or a continuation.
	for _, line := range strings.Split(strings.TrimSuffix(string(hdr), "\r\n"), "\r\n") {
		if !strings.HasPrefix(line, "\t") && !strings.HasPrefix(line, "X-Mailjet-Prio: ") &&
			!strings.HasPrefix(line, "X-MJ-CustomID: ") && !strings.HasPrefix(line, "Received: ") {
			t.Errorf("unexpected header line %q in:\n%s", line, hdr)
		}
	}
	if bytes.Contains(hdr, []byte("for <z@evil>")) || bytes.Contains(hdr, []byte("(y)")) {
		t.Errorf("client text reached the trace header unsanitised:\n%s", hdr)
	}
}

func TestOversizedCommandLine(t *testing.T) {
	e := newEnv(t, mjtest.StartTLS, nil)
	rc := dialRaw(t, e.plainAddr())
	defer rc.c.Close()
	rc.cmd("EHLO x")
	if r := rc.cmd("MAIL FROM:<" + strings.Repeat("a", 5000) + "@example.com>"); !strings.HasPrefix(r, "500 5.4.0") {
		t.Errorf("oversized command: %s", r)
	}
	// Service goes on for others.
	c := e.client()
	if _, err := send(c, "a@example.com", []string{"b@example.org"}, testMessage("after-long-line")); err != nil {
		t.Fatal(err)
	}
	c.Quit()
}

// TestIdleConnectionsAndSlowlorisDoNotStopService holds far more idle
// connections than there are slots, plus a client that dribbles a command
// byte by byte; a real client still gets its mail through.
func TestIdleConnectionsAndSlowlorisDoNotStopService(t *testing.T) {
	e := newEnv(t, mjtest.StartTLS, func(c *config.Config) { c.SMTP.MaxConnections = 200 })
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for i := 0; i < 1000; i++ {
		c, err := net.Dial("tcp", e.plainAddr())
		if err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
		idle = append(idle, c)
	}
	slow, err := net.Dial("tcp", e.plainAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for _, b := range []byte("EHLO slowloris.example.with.a.very.long.name\r\n") {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			slow.Write([]byte{b})
		}
	}()
	for i := 0; i < 3; i++ {
		c, err := smtp.Dial(e.plainAddr())
		if err != nil {
			t.Fatalf("client %d could not connect: %v", i, err)
		}
		if err := c.Auth(saslPlain(odooUser, odooPass)); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		if _, err := send(c, "a@example.com", []string{"b@example.org"}, testMessage(fmt.Sprintf("served-%d", i))); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		c.Quit()
	}
	e.waitDelivered(3)
}
