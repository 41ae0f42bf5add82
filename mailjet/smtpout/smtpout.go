// Package smtpout delivers to Mailjet's SMTP relay (in-v3.mailjet.com) with
// go-smtp's client: STARTTLS required on 587/2525 or implicit TLS on 465,
// certificates verified, AUTH PLAIN with the API key and secret key, and
// connections kept open and reused across messages.
package smtpout

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mjrelay/mjrelay/mailjet"
)

// Config describes the upstream.
type Config struct {
	Host     string
	Port     int
	TLS      string // "starttls" or "tls"
	Username string // the Mailjet API key
	Password string // the Mailjet secret key
	// CAFile adds a PEM bundle to the system roots; RootCAs replaces them.
	CAFile  string
	RootCAs *x509.CertPool
	Helo    string        // our EHLO name
	Timeout time.Duration // per command; the body gets 5× this
	// IdleTimeout closes pooled connections unused this long (default 30 s).
	IdleTimeout time.Duration
	MaxIdle     int
	Logger      *slog.Logger
}

// Target is the Mailjet SMTP transport. It is safe for concurrent use; each
// Deliver uses its own connection.
type Target struct {
	cfg  Config
	addr string
	tls  *tls.Config
	log  *slog.Logger

	mu     sync.Mutex
	idle   []*conn
	closed bool
	stop   chan struct{}
}

type conn struct {
	c      *smtp.Client
	raw    net.Conn
	used   time.Time
	utf8   bool
	reused bool
}

// New prepares the transport; it connects lazily.
func New(cfg Config) (*Target, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Minute
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Second
	}
	if cfg.MaxIdle <= 0 {
		cfg.MaxIdle = 8
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	roots := cfg.RootCAs
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, err
		}
		if roots == nil {
			if roots, err = x509.SystemCertPool(); err != nil {
				roots = x509.NewCertPool()
			}
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificates", cfg.CAFile)
		}
	}
	if cfg.TLS != "starttls" && cfg.TLS != "tls" {
		return nil, fmt.Errorf("smtp tls mode %q is not starttls or tls", cfg.TLS)
	}
	t := &Target{
		cfg:  cfg,
		addr: net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)),
		tls:  &tls.Config{ServerName: cfg.Host, RootCAs: roots, MinVersion: tls.VersionTLS12},
		log:  cfg.Logger,
		stop: make(chan struct{}),
	}
	go t.reaper()
	return t, nil
}

func (t *Target) Name() string { return "smtp" }

// Close closes the pooled connections.
func (t *Target) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	close(t.stop)
	for _, c := range idle {
		c.quit()
	}
	return nil
}

// Deliver sends one message. A pooled connection that turns out to be dead
// before anything was accepted is replaced once, transparently.
func (t *Target) Deliver(ctx context.Context, m *mailjet.Message) mailjet.Result {
	for try := 0; ; try++ {
		c, err := t.get(ctx)
		if err != nil {
			return t.failAll(m, err)
		}
		res, reusable, stale := t.send(ctx, c, m)
		if stale && c.reused && try == 0 {
			c.close()
			continue
		}
		if reusable {
			t.put(c)
		} else {
			c.close()
		}
		return res
	}
}

// send runs one transaction. stale means the connection failed at its very
// first command (an idle connection the server had already dropped).
func (t *Target) send(ctx context.Context, c *conn, m *mailjet.Message) (res mailjet.Result, reusable, stale bool) {
	res.Upstream = t.addr
	if dl, ok := ctx.Deadline(); ok {
		c.raw.SetDeadline(dl)
	} else {
		c.raw.SetDeadline(time.Time{})
	}
	stopWatch := context.AfterFunc(ctx, func() { c.raw.SetDeadline(time.Now()) })
	defer stopWatch()

	if m.UTF8 && !c.utf8 {
		reply := mailjet.Reply{Code: 554, Enhanced: "5.6.7", Text: "Mailjet's SMTP server does not offer SMTPUTF8, needed for a non-ASCII address"}
		res.Rcpts, res.Reply = mailjet.AllRcpts(m, mailjet.PermFail, reply), reply
		return res, true, false
	}
	hints := mailjet.HintHeaders(m)
	if err := c.c.Mail(quoteLocal(m.From), &smtp.MailOptions{Size: int64(len(hints) + len(m.Body)), UTF8: m.UTF8}); err != nil {
		res.Rcpts, res.Reply = t.classify(m, err)
		return res, resetOK(c, err), !isSMTP(err)
	}
	res.Rcpts = make([]mailjet.RcptResult, len(m.Rcpts))
	accepted := 0
	for i, r := range m.Rcpts {
		res.Rcpts[i] = mailjet.RcptResult{Rcpt: r, Status: mailjet.Delivered}
		if err := c.c.Rcpt(quoteLocal(r), nil); err != nil {
			if !isSMTP(err) {
				res.Rcpts, res.Reply = t.classify(m, err)
				return res, false, false
			}
			st, reply := status(err)
			res.Rcpts[i].Status, res.Rcpts[i].Reply = st, reply
			continue
		}
		accepted++
	}
	if accepted == 0 {
		res.Reply = res.Rcpts[0].Reply
		return res, resetOK(c, nil), false
	}
	w, err := c.c.Data()
	if err != nil {
		res.Rcpts, res.Reply = t.classify(m, err)
		return res, resetOK(c, err), false
	}
	_, err = w.Write(hints)
	if err == nil {
		_, err = w.Write(m.Body)
	}
	if err != nil {
		w.Close()
		res.Rcpts, res.Reply = t.classify(m, err)
		return res, false, false
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		res.Rcpts, res.Reply = t.classify(m, err)
		return res, resetOK(c, err), false
	}
	res.Reply = mailjet.ParseReply("250 " + resp.StatusText)
	res.UpstreamID = upstreamID(resp.StatusText)
	for i := range res.Rcpts {
		if res.Rcpts[i].Status == mailjet.Delivered {
			res.Rcpts[i].Reply = res.Reply
		}
	}
	c.used = time.Now()
	return res, true, false
}

// classify turns a transaction-level error into every pending recipient's
// outcome: 5xx permanent; 4xx, network, TLS and timeouts temporary.
func (t *Target) classify(m *mailjet.Message, err error) ([]mailjet.RcptResult, mailjet.Reply) {
	st, reply := status(err)
	return mailjet.AllRcpts(m, st, reply), reply
}

func status(err error) (mailjet.Status, mailjet.Reply) {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		reply := mailjet.Reply{Code: se.Code, Text: se.Message}
		if se.EnhancedCode != smtp.NoEnhancedCode && se.EnhancedCode != (smtp.EnhancedCode{}) {
			reply.Enhanced = fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
		}
		if se.Code >= 500 {
			return mailjet.PermFail, reply
		}
		return mailjet.TempFail, reply
	}
	return mailjet.TempFail, mailjet.Reply{Text: "connection error: " + err.Error()}
}

func isSMTP(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se)
}

// resetOK issues RSET after an SMTP-level failure and reports whether the
// connection can be reused.
func resetOK(c *conn, err error) bool {
	if err != nil && !isSMTP(err) {
		return false
	}
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) && se.Code == 421 {
			return false
		}
	}
	return c.c.Reset() == nil
}

// quoteLocal writes an address's local part as a quoted string when it is
// not a dot-atom (RFC 5321 4.1.2): go-smtp's server hands the relay the
// unquoted form, and its client sends addresses as given.
func quoteLocal(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr
	}
	local := addr[:at]
	if isDotAtom(local) {
		return addr
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(local) + `"` + addr[at:]
}

func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c >= 0x80, c == '.':
		case strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", c):
		default:
			return false
		}
	}
	return true
}

// upstreamID extracts the queue id from a reply like "2.0.0 OK queued as X".
func upstreamID(text string) string {
	if i := strings.LastIndex(strings.ToLower(text), "queued as "); i >= 0 {
		return strings.Trim(strings.Fields(text[i+len("queued as "):] + " ")[0], "<>")
	}
	return ""
}

func (t *Target) failAll(m *mailjet.Message, err error) mailjet.Result {
	st, reply := status(err)
	if st == mailjet.PermFail {
		// A refusal while connecting or logging in is about our account or
		// keys, not this message: keep it queued while the admin fixes it.
		st = mailjet.TempFail
	}
	return mailjet.Result{Rcpts: mailjet.AllRcpts(m, st, reply), Reply: reply, Upstream: t.addr}
}
