package smtpout

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/mjrelay/mjrelay/mailjet"
)

// get returns a pooled connection (most recently used first) or a new one.
func (t *Target) get(ctx context.Context) (*conn, error) {
	t.mu.Lock()
	for n := len(t.idle); n > 0; n = len(t.idle) {
		c := t.idle[n-1]
		t.idle = t.idle[:n-1]
		if time.Since(c.used) < t.cfg.IdleTimeout {
			t.mu.Unlock()
			c.reused = true
			return c, nil
		}
		go c.quit()
	}
	t.mu.Unlock()
	return t.dial(ctx)
}

func (t *Target) put(c *conn) {
	c.raw.SetDeadline(time.Time{})
	t.mu.Lock()
	if !t.closed && len(t.idle) < t.cfg.MaxIdle {
		t.idle = append(t.idle, c)
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	c.quit()
}

// dial connects, secures and authenticates a new connection. There is no
// fallback to plaintext: with "starttls", a server that does not offer
// STARTTLS is an error.
func (t *Target) dial(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Now()) })
	defer stop()

	var c *smtp.Client
	if t.cfg.TLS == "tls" {
		tc := tls.Client(raw, t.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, fmt.Errorf("TLS handshake with %s: %w", t.addr, err)
		}
		raw = tc
		c = smtp.NewClient(raw)
	} else {
		c, err = smtp.NewClientStartTLS(raw, t.tls)
		if err != nil {
			raw.Close()
			return nil, fmt.Errorf("STARTTLS with %s: %w", t.addr, err)
		}
	}
	c.CommandTimeout = t.cfg.Timeout
	c.SubmissionTimeout = 5 * t.cfg.Timeout
	if err := c.Hello(t.cfg.Helo); err != nil {
		c.Close()
		return nil, err
	}
	if ok, _ := c.Extension("AUTH"); !ok {
		c.Close()
		return nil, fmt.Errorf("%s does not offer AUTH", t.addr)
	}
	if err := c.Auth(sasl.NewPlainClient("", t.cfg.Username, t.cfg.Password)); err != nil {
		c.Close()
		return nil, fmt.Errorf("Mailjet refused the login with API key %s (check mailjet.api_key and mailjet.secret_key): %w", mailjet.MaskKey(t.cfg.Username), err)
	}
	utf8, _ := c.Extension("SMTPUTF8")
	return &conn{c: c, raw: raw, used: time.Now(), utf8: utf8}, nil
}

func (c *conn) quit() {
	c.raw.SetDeadline(time.Now().Add(5 * time.Second))
	c.c.Quit()
	c.c.Close()
}

func (c *conn) close() { c.c.Close() }

// reaper closes idle connections past IdleTimeout.
func (t *Target) reaper() {
	tick := time.NewTicker(t.cfg.IdleTimeout / 2)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
		}
		t.mu.Lock()
		keep := t.idle[:0]
		var old []*conn
		for _, c := range t.idle {
			if time.Since(c.used) >= t.cfg.IdleTimeout {
				old = append(old, c)
			} else {
				keep = append(keep, c)
			}
		}
		t.idle = keep
		t.mu.Unlock()
		for _, c := range old {
			c.quit()
		}
	}
}
