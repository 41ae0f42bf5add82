package smtpd_test

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mjrelay/mjrelay/relay/intake"
	"github.com/mjrelay/mjrelay/relay/smtpd"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// TestApplyProxyAndRecipients: a reload (Apply) sets
// smtp.proxy_protocol_from for the connections that start after it (one
// open before it goes on as it started) and smtp.max_recipients for the
// messages after it, without closing the listener.
func TestApplyProxyAndRecipients(t *testing.T) {
	traffic := &trafficlog.Memory{}
	o := options(t)
	o.Listen = "127.0.0.1:0"
	o.Trusted = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	srv, err := smtpd.New(o, smtpd.Deps{Intake: newIntake(t, intake.Deps{Traffic: traffic}), Traffic: traffic})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	addr := srv.Addrs()[0].String()
	before, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()
	if err := before.Hello("odoo.test"); err != nil {
		t.Fatal(err)
	}

	o.ProxyFrom = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	o.MaxRecipients = 1
	o.ProxyHeaderTimeout = 300 * time.Millisecond
	if err := srv.Apply(o); err != nil {
		t.Fatal(err)
	}

	// A load balancer's connection: the client's address (trusted) is the
	// session's.
	c := smtp.NewClient(viaProxy(t, addr, 2, "192.0.2.10:40000"))
	defer c.Close()
	if err := c.SendMail("bounce@example.com", []string{"a@example.org"}, strings.NewReader("Subject: one\r\n\r\nhi\r\n")); err != nil {
		t.Fatalf("trusted client behind the proxy after the reload: %v", err)
	}
	if got := traffic.Events(trafficlog.Received); len(got) != 1 || got[0].Client != "192.0.2.10:40000" {
		t.Fatalf("received %+v", got)
	}
	err = c.SendMail("bounce@example.com", []string{"a@example.org", "b@example.org"}, strings.NewReader("Subject: two\r\n\r\nhi\r\n"))
	if smtpCode(err) != 550 || !strings.Contains(err.Error(), "at most 1 per message (smtp.max_recipients)") {
		t.Fatalf("two recipients with max_recipients = 1: %v", err)
	}

	// The connection open before the reload goes on as a direct one.
	if err := before.Noop(); err != nil {
		t.Fatalf("connection opened before the reload: %v", err)
	}
	// A new direct one from the load balancer's address lacks its header.
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if got, _ := io.ReadAll(raw); !strings.HasPrefix(string(got), "421 4.7.0 mjrelay.local Expected a PROXY protocol header") {
		t.Fatalf("direct connection from the load balancer's address after the reload: %q", got)
	}
}
