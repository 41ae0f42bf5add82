package odootest_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/odoo"
	"github.com/mjrelay/mjrelay/relay/odoo/odootest"
)

const origID = "<1712.1699-openerp-42-sale.order@odoo>"

func goodBounce() odoo.Bounce {
	return odoo.Bounce{MessageID: "<dsn-1@relay.test>", Hostname: "relay.test", To: "bounce@example.com",
		Recipient: "Jane@Example.org", Status: "5.1.1", Diagnostic: "smtp; 550 5.1.1 No such user",
		Explanation: "The recipient's server says this address does not exist.", QueueID: "q1",
		Arrival: time.Unix(1700000000, 0), Failed: time.Unix(1700000100, 0),
		Headers: []byte("Message-Id: " + origID + "\r\nFrom: john@example.com\r\nTo: jane@example.org\r\nSubject: Quote")}
}

func process(t *testing.T, s *odootest.Server, raw []byte) {
	t.Helper()
	c := odoo.New(odoo.Options{URL: s.URL(), DB: "db", Login: "relay", APIKey: "k"})
	if _, err := c.ProcessMessage(context.Background(), raw); err != nil {
		t.Fatal(err)
	}
}

func TestCountsTheDSNShape(t *testing.T) {
	s := odootest.Start("db", "relay", "k")
	defer s.Close()
	s.AddMessage(origID)
	process(t, s, odoo.DSN(goodBounce()))
	bs := s.Bounces()
	if len(bs) != 1 || len(s.Rejected()) != 0 {
		t.Fatalf("bounces %+v, rejected %+v", bs, s.Rejected())
	}
	b := bs[0]
	if b.Recipient != "jane@example.org" || b.Original != origID || b.Status != "5.1.1" ||
		!strings.Contains(b.Diagnostic, "No such user") || !strings.Contains(b.Explanation, "does not exist") {
		t.Fatalf("read as %+v", b)
	}
	process(t, s, odoo.DSN(goodBounce()))
	if d := s.DuplicateDSNs(); len(d) != 1 || len(s.Bounces()) != 2 {
		t.Fatalf("a DSN sent twice is counted twice by Odoo and must show as a duplicate: %v", d)
	}
}

// TestRejectsMalformedDSNs: each defect alone makes Odoo miss the bounce.
func TestRejectsMalformedDSNs(t *testing.T) {
	good := string(odoo.DSN(goodBounce()))
	// Each test breaks one thing in the good DSN.
	tests := []struct {
		name string
		edit func(string) string
		why  string
	}{
		{"original id at top level", func(m string) string {
			return strings.Replace(m, "Message-Id: <dsn-1@relay.test>", "Message-Id: "+origID, 1)
		}, "existing mail.message"},
		{"no detection signal", func(m string) string {
			m = strings.Replace(m, "MAILER-DAEMON@", "postmaster@", 1)
			m = strings.Replace(m, "To: <bounce@example.com>", "To: <someone@example.com>", 1)
			return strings.Replace(m, "multipart/report; report-type=delivery-status;", "multipart/mixed;", 1)
		}, "not detected"},
		{"no delivery-status part", func(m string) string {
			return strings.Replace(m, "message/delivery-status", "text/plain", 1)
		}, "no message/delivery-status"},
		{"one block only", func(m string) string {
			return strings.Replace(m, "Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n\r\n", "Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n", 1)
		}, "per-recipient block"},
		{"Final-Recipient without ';'", func(m string) string {
			return strings.Replace(m, "Final-Recipient: rfc822; Jane@Example.org", "Final-Recipient: Jane@Example.org", 1)
		}, "no ';'"},
		{"no embedded headers", func(m string) string {
			return strings.Replace(m, "text/rfc822-headers", "text/x-headers", 1)
		}, "original cannot be found"},
		{"unknown original", func(m string) string {
			return strings.Replace(m, "Message-Id: "+origID, "Message-Id: <other@odoo>", 1)
		}, "no known mail.message"},
		{"no Message-Id", func(m string) string {
			return strings.Replace(m, "Message-Id: <dsn-1@relay.test>\r\n", "", 1)
		}, "no Message-Id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bad := tc.edit(good)
			if bad == good {
				t.Fatal("the edit changed nothing")
			}
			s := odootest.Start("db", "relay", "k")
			defer s.Close()
			s.AddMessage(origID)
			process(t, s, []byte(bad))
			if n := len(s.Bounces()); n != 0 {
				t.Fatalf("counted %d bounces", n)
			}
			r := s.Rejected()
			if len(r) != 1 || !strings.Contains(r[0].Why, tc.why) {
				t.Fatalf("rejected %+v, want %q", r, tc.why)
			}
		})
	}
}

func TestAuthRightsAndOutage(t *testing.T) {
	s := odootest.Start("db", "relay", "k")
	defer s.Close()
	ctx := context.Background()
	c := odoo.New(odoo.Options{URL: s.URL(), DB: "db", Login: "relay", APIKey: "wrong"})
	if _, err := c.Authenticate(ctx); odoo.ClassOf(err) != odoo.Setup {
		t.Fatalf("wrong key: %v (%v)", err, odoo.ClassOf(err))
	}
	c = odoo.New(odoo.Options{URL: s.URL(), DB: "nodb", Login: "relay", APIKey: "k"})
	if _, err := c.Authenticate(ctx); odoo.ClassOf(err) != odoo.Setup || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("wrong database: %v", err)
	}
	c = odoo.New(odoo.Options{URL: s.URL(), DB: "db", Login: "relay", APIKey: "k"})
	if v, err := c.Version(ctx); err != nil || v != "17.0" {
		t.Fatalf("version %q %v", v, err)
	}
	if err := c.CheckRights(ctx, true); err != nil {
		t.Fatal(err)
	}
	s.SetRights(odootest.Rights{Mail: true})
	if err := c.CheckRights(ctx, true); odoo.ClassOf(err) != odoo.Setup || !strings.Contains(err.Error(), "mail.blacklist") {
		t.Fatalf("rights: %v", err)
	}
	if _, err := c.Blacklist(ctx, "x@example.org", "why"); odoo.ClassOf(err) != odoo.Setup {
		t.Fatalf("blacklist without rights: %v", err)
	}
	// The key replaced in Odoo: the session's next call is refused, the
	// client logs in again and fails for good (Setup).
	s.SetKey("new")
	if _, err := c.ProcessMessage(ctx, []byte("x")); odoo.ClassOf(err) != odoo.Setup {
		t.Fatalf("after the key changed: %v", err)
	}
	s.SetKey("k")
	s.SetDown(true)
	if _, err := c.ProcessMessage(ctx, []byte("x")); odoo.ClassOf(err) != odoo.Temporary {
		t.Fatalf("down: %v", err)
	}
	if _, err := odoo.OneClick(ctx, http.DefaultClient, s.URL()+"/mailing/3/unsubscribe_oneclick?hash_token=t"); odoo.ClassOf(err) != odoo.Temporary {
		t.Fatalf("one-click while down: %v", err)
	}
	s.SetDown(false)
	if _, err := c.ProcessMessage(ctx, odoo.DSN(goodBounce())); err != nil {
		t.Fatal(err)
	}
}

func TestBlacklistAndOneClick(t *testing.T) {
	s := odootest.Start("db", "relay", "k")
	defer s.Close()
	ctx := context.Background()
	c := odoo.New(odoo.Options{URL: s.URL(), DB: "db", Login: "relay", APIKey: "k"})
	s.AddBlacklisted("old@example.org", false) // archived
	for _, e := range []string{"New@Example.org", "old@example.org", "new@example.org"} {
		if _, err := c.Blacklist(ctx, e, "spam complaint from "+e); err != nil {
			t.Fatalf("%s: %v", e, err)
		}
	}
	bl := s.Blacklisted()
	if len(bl) != 2 || len(bl["new@example.org"]) != 2 || len(bl["old@example.org"]) != 1 {
		t.Fatalf("blacklist %v", bl)
	}
	for _, call := range s.BlacklistCalls() {
		if call.Method == "search" && call.Context["active_test"] != false {
			t.Fatalf("search without active_test False: %+v", call)
		}
	}
	// One-click: the route takes a form POST of List-Unsubscribe=One-Click.
	url := s.URL() + "/mailing/3/unsubscribe_oneclick?document_id=9&email=a%40b.c&hash_token=tok"
	if _, err := odoo.OneClick(ctx, http.DefaultClient, url); err != nil {
		t.Fatal(err)
	}
	resp, _ := http.Post(url, "text/plain", bytes.NewReader([]byte("unsubscribe")))
	resp.Body.Close()
	if _, err := odoo.OneClick(ctx, http.DefaultClient, s.URL()+"/mailing/3/unsubscribe_oneclick"); odoo.ClassOf(err) != odoo.Rejected {
		t.Fatalf("no token: %v", err)
	}
	u := s.Unsubscribes()
	if len(u) != 3 || !u[0].OK || u[1].OK || u[2].OK {
		t.Fatalf("unsubscribes %+v", u)
	}
}
