package relay_test

import (
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/pires/go-proxyproto"

	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// lbAddr is the load balancer's address in these tests: the relay trusts
// PROXY headers from it only. Clients dial from 127.0.0.1, a different
// address on the same loopback network.
const lbAddr = "127.0.0.2"

// behindLB configures the relay for a load balancer at lbAddr.
func behindLB(c *config.Config) { c.SMTP.ProxyProtocolFrom = []string{lbAddr + "/32"} }

// balancer is a load balancer in front of target, as HAProxy with
// send-proxy (version 1) or send-proxy-v2 (2) is: it dials the relay from
// from and sends a PROXY header naming client before what it forwards;
// version 0 sends none. It returns the address clients connect to.
func balancer(t *testing.T, target string, version byte, client, from string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	src := net.TCPAddrFromAddrPort(netip.MustParseAddrPort(client))
	dst := net.TCPAddrFromAddrPort(netip.MustParseAddrPort(target))
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
			out, err := d.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			if version > 0 {
				proxyproto.HeaderProxyFromAddrs(version, src, dst).WriteTo(out)
			}
			go func() { io.Copy(out, in); out.(*net.TCPConn).CloseWrite() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
	return l.Addr().String()
}

// TestBehindLoadBalancer: Odoo's smtplib through a load balancer, with a
// v1 header to the STARTTLS port and a v2 header to the implicit TLS port:
// the traffic record and the Received header name the real client, and
// the rules that depend on the client's address (AUTH without TLS only
// from loopback, the trusted networks) apply to it. A header from an
// address not in proxy_protocol_from is refused; a direct client from
// another address is served as usual.
func TestBehindLoadBalancer(t *testing.T) {
	e := newEnv(t, mjtest.StartTLS, func(c *config.Config) {
		behindLB(c)
		c.SMTP.TrustedNetworks = []string{"192.0.2.0/24"}
	})
	v1 := balancer(t, e.plainAddr(), 1, "198.51.100.7:40001", lbAddr)
	v2 := balancer(t, e.tlsAddr(), 2, "[2001:db8::7]:40002", lbAddr)
	for _, tc := range []struct{ addr, enc string }{{v1, "starttls"}, {v2, "ssl"}} {
		res := replay(t, "batch", "127.0.0.1", port(tc.addr), tc.enc, odooUser, odooPass, "1")
		if res["sent"] != float64(1) || res["utf8"] != "ok" {
			t.Fatalf("through the load balancer (%s): %v", tc.enc, res)
		}
	}
	got := e.waitDelivered(4)
	clients := map[string]int{}
	for _, ev := range e.traffic.Events(trafficlog.Received) {
		clients[ev.Client]++
	}
	if clients["198.51.100.7:40001"] != 2 || clients["[2001:db8::7]:40002"] != 2 {
		t.Fatalf("received from %v", clients)
	}
	for _, g := range got {
		if !strings.Contains(string(g.Data), "([198.51.100.7])") && !strings.Contains(string(g.Data), "([2001:db8::7])") {
			t.Errorf("Received header does not name the client:\n%.300s", g.Data)
		}
	}

	// Encryption "None" with a username, from a client that is not on
	// loopback: AUTH is not offered before TLS.
	res := shows(t, "test", "127.0.0.1", port(v1), "none", odooUser, odooPass, "notifications@example.com")
	if res["shown"] != "An option is not supported by the server:\n SMTP AUTH extension not supported by server." {
		t.Errorf("None with a username from another host: %q", res["shown"])
	}
	// The trusted networks apply to the client: 192.0.2.10 sends without
	// a login, 198.51.100.7 may not.
	trusted := balancer(t, e.plainAddr(), 2, "192.0.2.10:40003", lbAddr)
	if res := shows(t, "send", "127.0.0.1", port(trusted), "none", "", "", "bounce@example.com", "client@example.org"); res["state"] != "sent" {
		t.Errorf("trusted client behind the load balancer: %v", res)
	}
	res = shows(t, "send", "127.0.0.1", port(v1), "none", "", "", "bounce@example.com", "client@example.org")
	if !strings.Contains(res["shown"].(string), `SMTPSenderRefused: (530, b"5.7.0 Authentication required`) {
		t.Errorf("untrusted client behind the load balancer: %v", res)
	}

	// A header from an address not allowed: the connection closes after
	// the greeting.
	rogue := balancer(t, e.plainAddr(), 1, "192.0.2.10:40004", "127.0.0.1")
	res = shows(t, "test", "127.0.0.1", port(rogue), "starttls", odooUser, odooPass, "notifications@example.com")
	if !strings.HasPrefix(res["shown"].(string), "The server has closed the connection unexpectedly.") {
		t.Errorf("header from an address not allowed: %q", res["shown"])
	}
	// A direct client from 127.0.0.1 connects as before.
	res = shows(t, "test", "127.0.0.1", port(e.plainAddr()), "starttls", odooUser, odooPass, "notifications@example.com")
	if res["shown"] != "Connection Test Successful!" {
		t.Errorf("direct client: %q", res["shown"])
	}
}
