package relay_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/relay"
	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/lanes"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

const (
	apiKey    = "0123456789abcdef0123456789abcdef"
	secretKey = "s3cr3t-mailjet-key-fedcba9876543210"
	odooUser  = "odoo"
	odooPass  = "odoo-relay-password"
)

type env struct {
	t       testing.TB
	cfg     *config.Config
	up      *mjtest.SMTPRelay
	r       *relay.Relay
	traffic *trafficlog.Memory
	lat     *latencies
}

// latencies keeps the end-to-end latency of delivered transactional mail.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) Record(e trafficlog.Event) {
	if e.Event == trafficlog.Delivered && e.Class == string(lanes.Transactional) {
		l.mu.Lock()
		l.d = append(l.d, time.Duration(e.DurationMS*float64(time.Millisecond)))
		l.mu.Unlock()
	}
}

func (l *latencies) since(n int) []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Duration(nil), l.d[min(n, len(l.d)):]...)
}

// newEnv starts an emulated Mailjet relay and mjrelay in front of it.
// mutate adjusts the configuration before start.
func newEnv(t testing.TB, mode mjtest.SMTPMode, mutate func(*config.Config)) *env {
	t.Helper()
	up, err := mjtest.NewSMTPRelay(apiKey, secretKey, mode)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	hash, _ := bcrypt.GenerateFromPassword([]byte(odooPass), bcrypt.MinCost)
	tlsMode := "starttls"
	if mode == mjtest.ImplicitTLS {
		tlsMode = "tls"
	}
	doc := fmt.Sprintf(`
data_dir = %q
hostname = "relay.test"
[smtp]
listen = "127.0.0.1:0"
listen_tls = "127.0.0.1:0"
[[smtp.users]]
username = %q
password_hash = %q
[mailjet]
api_key = %q
secret_key = %q
transport = "smtp"
smtp_host = "127.0.0.1"
smtp_port = %d
smtp_tls = %q
timeout = "5s"
[queue]
retry_min = "100ms"
retry_max = "400ms"
[http]
listen = ""
[policy]
sender_check = "off"
[log]
traffic = "off"
`, filepath.Join(t.TempDir(), "data"), odooUser, hash, apiKey, secretKey, up.Port(), tlsMode)
	cfg, err := config.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(cfg)
	}
	e := &env{t: t, cfg: cfg, up: up, traffic: &trafficlog.Memory{}, lat: &latencies{}}
	e.start()
	return e
}

func (e *env) start() {
	e.t.Helper()
	if err := e.tryStart(); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) tryStart() error {
	r, err := relay.Start(e.cfg, relay.Options{Traffic: trafficlog.Multi{e.traffic, e.lat}, UpstreamRoots: e.up.CAPool(),
		FeedbackRetryMin: 50 * time.Millisecond})
	if err != nil {
		return err
	}
	e.r = r
	e.t.Cleanup(func() { e.stop() })
	return nil
}

// sandbox switches the relay to sandbox mode, as a file without keys would.
func sandbox(c *config.Config) {
	c.Mailjet.Transport = config.TransportSandbox
	c.Routes.Transactional.Transports = []string{config.TransportSandbox}
	c.Routes.Bulk.Transports = []string{config.TransportSandbox}
}

// withAPI points the sender check at a Mailjet REST emulator.
func withAPI(api *mjtest.API, mode string) func(*config.Config) {
	return func(c *config.Config) {
		c.Mailjet.APIURL = api.URL()
		c.Policy.SenderCheck = mode
	}
}

func (e *env) stop() {
	if e.r == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.r.Shutdown(ctx)
	e.r = nil
}

func (e *env) plainAddr() string { return e.r.SMTPAddrs()[0].String() }
func (e *env) tlsAddr() string   { return e.r.SMTPAddrs()[1].String() }

func port(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }

// client dials the plain listener, says EHLO, upgrades with STARTTLS and
// logs in as the Odoo user.
func (e *env) client() *smtp.Client {
	e.t.Helper()
	c, err := smtp.DialStartTLS(e.plainAddr(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := c.Auth(sasl.NewPlainClient("", odooUser, odooPass)); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// send runs one transaction and returns the reply to the end of DATA.
func send(c *smtp.Client, from string, to []string, msg string) (string, error) {
	return sendWith(c, from, to, msg, nil)
}

// sendWith is send with MAIL parameters.
func sendWith(c *smtp.Client, from string, to []string, msg string, opts *smtp.MailOptions) (string, error) {
	if err := c.Mail(from, opts); err != nil {
		return "", err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return "", err
		}
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	return resp.StatusText, nil
}

func testMessage(subject string) string {
	return "From: John <john@example.com>\r\nTo: client@example.org\r\nSubject: " + subject +
		"\r\nMessage-Id: <" + subject + "@odoo.test>\r\n\r\nHello.\r\n"
}

// waitFor polls cond until it holds or 10 s pass.
func (e *env) waitFor(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitDelivered waits for n messages at the upstream.
func (e *env) waitDelivered(n int) []mjtest.Received {
	e.t.Helper()
	e.waitFor(fmt.Sprintf("%d messages at the upstream", n), func() bool { return e.up.Count() >= n })
	return e.up.Received()
}

func saslPlain(user, pass string) sasl.Client { return sasl.NewPlainClient("", user, pass) }

func smtpCode(err error) int {
	if se, ok := err.(*smtp.SMTPError); ok {
		return se.Code
	}
	return 0
}

func queueID(reply string) string {
	i := strings.LastIndex(reply, "queued as ")
	if i < 0 {
		return ""
	}
	return reply[i+len("queued as "):]
}
