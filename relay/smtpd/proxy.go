package smtpd

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pires/go-proxyproto"
)

// Behind a load balancer (smtp.proxy_protocol_from), a connection from one
// of its addresses must start with a PROXY protocol header (v1 or v2),
// before anything else: the SMTP greeting waits for it, and on the
// implicit TLS listener it comes before the TLS handshake. Its source is
// the client's address for everything the relay decides by address (the
// trusted networks, AUTH over plain text from loopback, the failed-login
// throttle) and records (the traffic log). Any other address connects as
// before, and must not send a header.
//
// Both kinds of mistake are refused, not guessed at: a load balancer's
// connection served without its header would make every client behind it
// look like the load balancer (trusted, if its address is; throttled
// together, if one guesses passwords), and a header accepted from anyone
// would let a client claim any address. The connection is closed before
// any session starts (no 421 in the middle of one); the plain listener
// first answers a load balancer's connection that lacks its header with a
// 421 greeting that says why (what Odoo's Test Connection then shows). A
// header from an address not allowed is seen only after the relay's
// greeting (clients speak after it): that connection is closed at once.
// Both are logged in aggregate (one line a minute per kind with a count).

// defaultProxyHeaderTimeout bounds the wait for a load balancer's PROXY
// header (sent as soon as it connects).
const defaultProxyHeaderTimeout = 10 * time.Second

// errProxyRefused ends a connection refused for its PROXY header; it is a
// net.ErrClosed, so that go-smtp ends the session without a reply or a
// log line of its own (the relay logs it).
var errProxyRefused = fmt.Errorf("PROXY protocol header refused: %w", net.ErrClosed)

// proxyWrap returns what wraps each accepted connection for the PROXY
// protocol (the connection itself while no proxy is configured: the
// addresses are read per connection, so that a reload applies them);
// plain says whether the listener speaks SMTP first (not TLS).
func (s *Server) proxyWrap(plain bool) func(*slotConn) net.Conn {
	return func(sc *slotConn) net.Conn {
		from := s.settings().ProxyFrom
		if len(from) == 0 {
			return sc
		}
		ip := addrIP(sc.RemoteAddr())
		for _, p := range from {
			if p.Contains(ip) {
				pc := &proxied{deadlineConn: deadlineConn{Conn: sc}, slot: sc, srv: s, br: bufio.NewReader(sc)}
				if plain {
					pc.greet = []byte(fmt.Sprintf("421 4.7.0 %s Expected a PROXY protocol header from %s (smtp.proxy_protocol_from): "+
						"set send-proxy in the load balancer, or remove the address from smtp.proxy_protocol_from\r\n", s.opts.Hostname, ip))
				}
				return pc
			}
		}
		return &unproxied{slotConn: sc, srv: s, br: bufio.NewReaderSize(sc, 16)}
	}
}

func addrIP(a net.Addr) netip.Addr {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// proxied is a connection from a load balancer: its PROXY header is read
// on the first Read, Write or RemoteAddr.
type proxied struct {
	deadlineConn // over slot
	slot         *slotConn
	srv          *Server
	greet        []byte // written when the header is missing (plain listener)

	once   sync.Once
	br     *bufio.Reader // until what it buffered is read
	header *proxyproto.Header
	err    error
}

func (c *proxied) readHeader() error {
	c.once.Do(func() {
		restore, _ := c.within(cmp.Or(c.srv.settings().ProxyHeaderTimeout, defaultProxyHeaderTimeout))
		c.header, c.err = proxyproto.Read(c.br)
		restore()
		if c.err == nil && c.header.Command.IsProxy() {
			if _, ok := c.header.SourceAddr.(*net.TCPAddr); !ok {
				c.err = fmt.Errorf("source %v is not a TCP address", c.header.SourceAddr)
			}
		}
		if c.err != nil {
			c.srv.warn("proxy header missing", "connection refused: no valid PROXY protocol header from a load balancer in smtp.proxy_protocol_from",
				"proxy", c.slot.RemoteAddr().String(), "err", c.err.Error())
			if c.greet != nil {
				c.slot.SetWriteDeadline(time.Now().Add(time.Second))
				c.slot.Write(c.greet)
			}
			c.slot.Close()
			c.err = errProxyRefused
		}
	})
	return c.err
}

func (c *proxied) Read(b []byte) (int, error) {
	if err := c.readHeader(); err != nil {
		return 0, err
	}
	if c.br != nil {
		if c.br.Buffered() > 0 && !c.slot.readClosed.Load() {
			return c.br.Read(b)
		}
		c.br = nil
	}
	return c.slot.Read(b)
}

func (c *proxied) Write(b []byte) (int, error) {
	if err := c.readHeader(); err != nil {
		return 0, err
	}
	return c.slot.Write(b)
}

// RemoteAddr is the client's address from the header; the load balancer's
// for its own connections (LOCAL: health checks) and before a valid header.
func (c *proxied) RemoteAddr() net.Addr {
	if c.readHeader() == nil && c.header.Command.IsProxy() {
		return c.header.SourceAddr
	}
	return c.slot.RemoteAddr()
}

// unproxied is a connection from any other address: its first bytes are
// checked for a PROXY header, which it may not send.
type unproxied struct {
	*slotConn
	srv     *Server
	br      *bufio.Reader // until the first bytes are checked and read
	checked bool
}

func (c *unproxied) NetConn() net.Conn { return c.slotConn }

func (c *unproxied) Read(b []byte) (int, error) {
	if c.br == nil {
		return c.slotConn.Read(b)
	}
	if !c.checked {
		if first, err := c.br.Peek(1); err == nil && (first[0] == proxyproto.SIGV1[0] || first[0] == proxyproto.SIGV2[0]) {
			sig := proxyproto.SIGV1
			if first[0] == proxyproto.SIGV2[0] {
				sig = proxyproto.SIGV2
			}
			if got, _ := c.br.Peek(len(sig)); bytes.Equal(got, sig) {
				c.srv.warn("proxy header refused", "connection refused: a PROXY protocol header from an address not in smtp.proxy_protocol_from",
					"client", c.slotConn.RemoteAddr().String())
				c.slotConn.Close()
				return 0, errProxyRefused
			}
		}
		c.checked = true
	}
	if c.br.Buffered() > 0 && !c.readClosed.Load() {
		return c.br.Read(b)
	}
	c.br = nil
	return c.slotConn.Read(b)
}
