package web

import (
	"testing"

	"github.com/mjrelay/mjrelay/mailjet/account"
	"github.com/mjrelay/mjrelay/mailjet/dnscheck"
)

func TestSendersReport(t *testing.T) {
	e := newEnv(t)
	s := e.srv.senders
	s.check(accountState().Snapshot) // what the background check does, synchronously
	rep := s.report(false)
	if !rep.Enabled || !rep.Known || rep.Stale || rep.AgeSeconds != 30 || len(rep.Senders) != 2 || len(rep.Domains) != 1 {
		t.Fatalf("report = %+v", rep)
	}
	if rep.DNSChecking || rep.DNSCheckedAt.IsZero() {
		t.Errorf("fresh DNS results are checked again: checking=%v at %v", rep.DNSChecking, rep.DNSCheckedAt)
	}
	got := map[string]dnscheck.Status{}
	for _, c := range rep.Domains[0].Checks {
		got[c.Check+" "+c.Record] = c.Status
	}
	want := map[string]dnscheck.Status{
		"sender notifications@acme.example":    dnscheck.OK, // the *@acme.example sender
		"mailjet-dkim acme.example":            dnscheck.OK,
		"mailjet-spf acme.example":             dnscheck.Warn, // "Not found", not required
		"ownership mailjet._abc.acme.example":  dnscheck.OK,
		"dkim mailjet._domainkey.acme.example": dnscheck.OK,
		"spf acme.example":                     dnscheck.Fail,
		"dmarc _dmarc.acme.example":            dnscheck.Fail,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	if rep.Failures != 2 {
		t.Errorf("failures = %d, want 2", rep.Failures)
	}
}

func TestSendersStates(t *testing.T) {
	tests := []struct {
		name    string
		account interface{ State() account.State }
		enabled bool
		known   bool
	}{
		{"sender check off", nil, false, false},
		{"account unknown", fakeAccount{st: account.State{LastError: "connection refused"}}, true, false},
		{"from disk", fakeAccount{st: func() account.State { s := accountState(); s.Source = account.SourceDisk; return s }()}, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, withDeps(func(d *Deps) { d.Account = tc.account }))
			rep := e.srv.senders.report(false)
			if rep.Enabled != tc.enabled || rep.Known != tc.known {
				t.Errorf("enabled %v known %v, want %v %v", rep.Enabled, rep.Known, tc.enabled, tc.known)
			}
			if w := e.do(t, "GET", "/senders", nil); w.Code != 200 {
				t.Errorf("page: %d", w.Code)
			}
		})
	}
}
