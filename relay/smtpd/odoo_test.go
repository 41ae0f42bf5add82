package smtpd_test

import (
	"encoding/json"
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/authlimit"
	"github.com/mjrelay/mjrelay/relay/odoo/odootest"
	"github.com/mjrelay/mjrelay/relay/smtpd"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// odooScript runs one of ../testdata's Odoo replays against the server at
// addr and decodes the JSON it prints into res.
func odooScript(t *testing.T, res any, script, mode, addr string, args ...string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command(odootest.Python3(t), append([]string{"../testdata/" + script, mode, host, port}, args...)...).Output()
	if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
	if err := json.Unmarshal(out, res); err != nil {
		t.Fatal(err)
	}
}

// odooShows is what Odoo's Test Connection shows for the server at addr
// (../testdata/odoo_shows.py).
func odooShows(t *testing.T, addr, encryption, user, pass string) string {
	t.Helper()
	var res struct{ Shown string }
	odooScript(t, &res, "odoo_shows.py", "test", addr, encryption, user, pass, "notifications@example.com")
	return res.Shown
}

// TestOdooShowsThrottledLogin: what Odoo's Test Connection shows once its
// address has used up its failed logins.
func TestOdooShowsThrottledLogin(t *testing.T) {
	lim := authlimit.New(authlimit.Options{Burst: 1, Every: time.Hour, MaxWait: 100 * time.Millisecond})
	addr := serve(t, smtpd.Deps{Guesses: lim})
	if got := odooShows(t, addr, "none", "odoo", "typo"); !strings.HasPrefix(got, "Server replied with following exception:\n (535, b'5.7.8 Authentication failed") {
		t.Fatalf("first wrong password: %q", got)
	}
	got := odooShows(t, addr, "none", "odoo", "another typo")
	if !strings.HasPrefix(got, "Server replied with following exception:\n (454, b'4.7.0 Too many failed logins from your address: try again in ") {
		t.Fatalf("throttled: %q", got)
	}
}

// TestOdooShowsMissingProxyHeader: what Odoo's Test Connection shows when
// the load balancer in smtp.proxy_protocol_from sends no PROXY header.
func TestOdooShowsMissingProxyHeader(t *testing.T) {
	plain, _ := proxyServer(t, "127.0.0.1/32", &trafficlog.Memory{}, io.Discard)
	got := odooShows(t, plain, "starttls", "odoo", "pw")
	want := "Server replied with following exception:\n (421, b'4.7.0 mjrelay.local Expected a PROXY protocol header from 127.0.0.1 " +
		"(smtp.proxy_protocol_from): set send-proxy in the load balancer, or remove the address from smtp.proxy_protocol_from')"
	if got != want {
		t.Fatalf("Odoo shows %q\nwant %q", got, want)
	}
}
