package smtpd_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/pires/go-proxyproto"

	"github.com/mjrelay/mjrelay/relay/intake"
	"github.com/mjrelay/mjrelay/relay/smtpd"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// proxyServer runs both listeners with proxy_protocol_from = from and
// trusted_networks = 192.0.2.0/24; it returns the plain and TLS addresses.
func proxyServer(t *testing.T, from string, traffic trafficlog.Recorder, logs io.Writer) (plain, implicit string) {
	t.Helper()
	o := options(t)
	o.Listen, o.ListenTLS = "127.0.0.1:0", "127.0.0.1:0"
	o.ProxyFrom = []netip.Prefix{netip.MustParsePrefix(from)}
	o.ProxyHeaderTimeout = 300 * time.Millisecond
	o.Trusted = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	srv, err := smtpd.New(o, smtpd.Deps{Intake: newIntake(t, intake.Deps{Traffic: traffic}), Traffic: traffic,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return srv.Addrs()[0].String(), srv.Addrs()[1].String()
}

// viaProxy connects to addr as a load balancer does: the PROXY header
// (version 1 or 2) for a client at src comes first.
func viaProxy(t *testing.T, addr string, version byte, src string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s := net.TCPAddrFromAddrPort(netip.MustParseAddrPort(src))
	d := net.TCPAddrFromAddrPort(netip.MustParseAddrPort(addr))
	if s.IP.To4() == nil {
		d = &net.TCPAddr{IP: net.ParseIP("::1"), Port: d.Port}
	}
	if _, err := proxyproto.HeaderProxyFromAddrs(version, s, d).WriteTo(c); err != nil {
		t.Fatal(err)
	}
	return c
}

func smtpCode(err error) int {
	if se, ok := err.(*smtp.SMTPError); ok {
		return se.Code
	}
	return 0
}

// TestProxyProtocol: from an allowed address, a v1 header on the plain
// listener and a v2 header before the TLS handshake give the session the
// client's address: the trusted networks apply to it, and the traffic
// record names it.
func TestProxyProtocol(t *testing.T) {
	traffic := &trafficlog.Memory{}
	plain, implicit := proxyServer(t, "127.0.0.1/32", traffic, io.Discard)

	// v1, plain: a client in the trusted networks sends without AUTH.
	c := smtp.NewClient(viaProxy(t, plain, 1, "192.0.2.10:40000"))
	if err := c.SendMail("bounce@example.com", []string{"a@example.org"}, strings.NewReader("Subject: v1\r\n\r\nhi\r\n")); err != nil {
		t.Fatalf("trusted client behind the proxy: %v", err)
	}
	c.Quit()
	if got := traffic.Events(trafficlog.Received); len(got) != 1 || got[0].Client != "192.0.2.10:40000" {
		t.Fatalf("received %+v", got)
	}

	// v2, implicit TLS: a client outside them must log in.
	tc := tls.Client(viaProxy(t, implicit, 2, "[2001:db8::7]:5000"), &tls.Config{InsecureSkipVerify: true})
	c = smtp.NewClient(tc)
	defer c.Close()
	if err := c.Mail("bounce@example.com", nil); smtpCode(err) != 530 {
		t.Fatalf("untrusted client behind the proxy: %v, want 530", err)
	}
	if got := traffic.Events(trafficlog.Refused); len(got) != 1 || got[0].Client != "[2001:db8::7]:5000" || !got[0].TLS {
		t.Fatalf("refused %+v", got)
	}

	// A LOCAL header (the proxy's own health check) is the proxy itself.
	raw, err := net.Dial("tcp", plain)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	(&proxyproto.Header{Version: 2, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}).WriteTo(raw)
	c = smtp.NewClient(raw)
	if err := c.Mail("bounce@example.com", nil); smtpCode(err) != 530 {
		t.Fatalf("LOCAL connection: %v, want 530 (127.0.0.1 is not trusted)", err)
	}
	if got := traffic.Events(trafficlog.Refused); len(got) != 2 || !strings.HasPrefix(got[1].Client, "127.0.0.1:") {
		t.Fatalf("refused %+v", got)
	}
}

// TestProxyProtocolRefused: an allowed address without a valid header, and
// a header from an address that is not allowed, are refused before any
// session: the first with a 421 greeting on the plain listener (nothing
// on the TLS one), the second by closing after the greeting; both logged
// in aggregate. A direct client from another address is served as usual.
func TestProxyProtocolRefused(t *testing.T) {
	traffic := &trafficlog.Memory{}
	logs := &syncBuffer{}
	plain, implicit := proxyServer(t, "127.0.0.1/32", traffic, logs)

	for range 3 {
		c, err := net.Dial("tcp", plain) // a client that waits for the greeting
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(c)
		c.Close()
		if !strings.HasPrefix(string(got), "421 4.7.0 mjrelay.local Expected a PROXY protocol header from 127.0.0.1 (smtp.proxy_protocol_from)") {
			t.Fatalf("plain listener without a header: %q", got)
		}
	}
	c, err := net.Dial("tcp", implicit)
	if err != nil {
		t.Fatal(err)
	}
	if err := tls.Client(c, &tls.Config{InsecureSkipVerify: true}).Handshake(); err == nil {
		t.Fatal("TLS handshake without a PROXY header succeeded")
	}
	c.Close()

	// Not allowed: 127.0.0.1 sends a header to a relay that trusts only
	// 192.0.2.1 as a proxy.
	other := &syncBuffer{}
	plain2, implicit2 := proxyServer(t, "192.0.2.1/32", traffic, other)
	for _, addr := range []string{plain2, implicit2} {
		pc := viaProxy(t, addr, 1, "192.0.2.10:40000")
		pc.SetReadDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(pc)
		if addr == plain2 {
			if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "220 ") {
				t.Fatalf("greeting %q, %v", line, err)
			}
		}
		if rest, _ := io.ReadAll(r); len(rest) != 0 {
			t.Errorf("%s: after the header: %q, want the connection closed", addr, rest)
		}
	}
	// ... and a direct client from 127.0.0.1 is served.
	dc, err := smtp.Dial(plain2)
	if err != nil {
		t.Fatal(err)
	}
	if err := dc.Hello("odoo.test"); err != nil {
		t.Fatalf("direct client: %v", err)
	}
	dc.Quit()

	if n := len(traffic.Events("")); n != 0 {
		t.Errorf("%d traffic events for refused connections: no session started", n)
	}
	if n := strings.Count(logs.String(), "no valid PROXY protocol header"); n != 1 {
		t.Errorf("%d log lines for 4 refused connections, want 1 (aggregated):\n%s", n, logs)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(other.String(), "a PROXY protocol header from an address not in smtp.proxy_protocol_from") {
		if time.Now().After(deadline) {
			t.Fatalf("no log line for a header from an address not allowed:\n%s", other)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPlainClientOnTLSPort: a client that speaks plain SMTP to the
// implicit TLS port is told, in a plain-text greeting, which encryption to
// choose; behind a load balancer too (after the PROXY header). A TLS
// client is served.
func TestPlainClientOnTLSPort(t *testing.T) {
	plain, implicit := proxyServer(t, "192.0.2.1/32", &trafficlog.Memory{}, io.Discard)
	_, plainPort, _ := net.SplitHostPort(plain)
	c, err := net.Dial("tcp", implicit)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "EHLO odoo.test\r\n")
	got, _ := io.ReadAll(c)
	want := "554 5.7.0 mjrelay.local This port expects TLS from the first byte: in Odoo choose Connection Encryption SSL/TLS for this port, or TLS (STARTTLS) with port " + plainPort + "\r\n"
	if string(got) != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	_, behind := proxyServer(t, "127.0.0.1/32", &trafficlog.Memory{}, io.Discard)
	pc := viaProxy(t, behind, 2, "192.0.2.10:40000")
	io.WriteString(pc, "EHLO odoo.test\r\n")
	if got, _ := io.ReadAll(pc); !strings.HasPrefix(string(got), "554 5.7.0 mjrelay.local This port expects TLS") {
		t.Fatalf("behind a load balancer: %q", got)
	}
	tc, err := tls.Dial("tcp", implicit, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if line, err := bufio.NewReader(tc).ReadString('\n'); err != nil || !strings.HasPrefix(line, "220 ") {
		t.Fatalf("TLS client: %q, %v", line, err)
	}
}
