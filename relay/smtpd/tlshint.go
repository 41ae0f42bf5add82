package smtpd

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// A client that speaks plain SMTP to the implicit TLS port (Odoo set to
// "TLS (STARTTLS)" or "None" on the SSL/TLS port) waits for a greeting,
// while the port waits for its TLS handshake: after 60 s Odoo shows "The
// server has closed the connection unexpectedly", which says nothing of the
// cause. TLS clients speak first, at once; so a connection that sends
// nothing for tlsHintDelay, or whose first byte does not start a TLS
// handshake, gets a plain-text 554 greeting that says which encryption to
// choose (Odoo shows it: "Server replied with following exception"), and
// is closed. The greeting comes before any session.

// tlsHintDelay is how long the implicit TLS port waits for a client's
// first byte before it assumes a plain SMTP client.
const tlsHintDelay = 3 * time.Second

// tlsRecordHandshake is the first byte of a TLS ClientHello.
const tlsRecordHandshake = 0x16

var errPlainOnTLS = fmt.Errorf("plain SMTP client on the implicit TLS port: %w", net.ErrClosed)

// tlsHinted is a connection to the implicit TLS port, below TLS.
type tlsHinted struct {
	deadlineConn
	srv     *Server
	checked bool
}

func (c *tlsHinted) Read(b []byte) (int, error) {
	if c.checked || len(b) == 0 {
		return c.Conn.Read(b)
	}
	restore, user := c.within(tlsHintDelay)
	n, err := c.Conn.Read(b)
	restore()
	var ne net.Error
	switch {
	case n > 0 && b[0] == tlsRecordHandshake:
		c.checked = true
		return n, err
	case n > 0, errors.As(err, &ne) && ne.Timeout() && (user.IsZero() || time.Now().Before(user)):
		c.srv.warn("plain client on the TLS port", "a client spoke plain SMTP to the implicit TLS port: it was told to use SSL/TLS (or the STARTTLS port)",
			"client", c.RemoteAddr().String())
		c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		c.Conn.Write(c.srv.tlsHint())
		c.Conn.Close()
		return 0, errPlainOnTLS
	}
	return n, err
}

// deadlineConn remembers the read deadline its user sets, so that a
// wrapper can read with a shorter one of its own (within) and then restore
// the user's.
type deadlineConn struct {
	net.Conn
	mu       sync.Mutex
	deadline time.Time
}

func (c *deadlineConn) NetConn() net.Conn { return c.Conn }

func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

func (c *deadlineConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

// within sets a read deadline wait from now, or the user's if sooner; it
// returns what restores the user's, and the user's.
func (c *deadlineConn) within(wait time.Duration) (restore func(), user time.Time) {
	c.mu.Lock()
	user = c.deadline
	c.mu.Unlock()
	d := time.Now().Add(wait)
	if !user.IsZero() && user.Before(d) {
		d = user
	}
	c.Conn.SetReadDeadline(d)
	return func() { c.Conn.SetReadDeadline(user) }, user
}

// tlsHint is the greeting a plain SMTP client gets on the implicit TLS
// port.
func (s *Server) tlsHint() []byte {
	other := "the STARTTLS port"
	if s.opts.Listen != "" && len(s.addrs) > 0 {
		if _, port, err := net.SplitHostPort(s.addrs[0].String()); err == nil {
			other = "port " + port
		}
	}
	return fmt.Appendf(nil, "554 5.7.0 %s This port expects TLS from the first byte: in Odoo choose Connection Encryption "+
		"SSL/TLS for this port, or TLS (STARTTLS) with %s\r\n", s.opts.Hostname, other)
}

// wrapTLSPort wraps each connection to the implicit TLS port: its PROXY
// header first (when configured), then the plain-client check.
func (s *Server) wrapTLSPort() func(*slotConn) net.Conn {
	proxy := s.proxyWrap(false)
	return func(sc *slotConn) net.Conn {
		return &tlsHinted{deadlineConn: deadlineConn{Conn: proxy(sc)}, srv: s}
	}
}
