package dnscheck

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/foxcpp/go-mockdns"

	"github.com/mjrelay/mjrelay/mailjet/account"
)

// TestReadiness: the checks of a domain, in the order both reports show
// them, judged by the report's settings.
func TestReadiness(t *testing.T) {
	snap := account.NewSnapshot(time.Now(), "key", []account.Sender{
		{Email: "notifications@acme.example", Status: account.StatusActive},
		{Email: "bounce@acme.example", Status: account.StatusInactive},
	}, []account.Domain{{Domain: "acme.example", DKIMStatus: account.CheckOK, SPFStatus: "Not found",
		DKIMRecordName: "mailjet._domainkey", DKIMRecordValue: "k=rsa; p=KEY",
		OwnerShipToken: "tok", OwnerShipTokenRecordName: "mailjet._tok"}})
	c := resolver(map[string]mockdns.Zone{
		"acme.example.":                    txt("v=spf1 include:spf.mailjet.com -all"),
		"mailjet._domainkey.acme.example.": txt("k=rsa; p=KEY"),
		"mailjet._tok.acme.example.":       txt("tok"),
		"_dmarc.acme.example.":             txt("v=DMARC1; p=reject"),
		"other.example.":                   txt("v=spf1 -all"),
	})
	tests := []struct {
		name      string
		r         Readiness
		snap      *account.Snapshot
		domain    string
		inAccount bool
		want      []string // check record status
	}{
		{"domain of the account, on the web page", Readiness{MissingSender: Warn}, snap, "acme.example", true, []string{
			"sender notifications@acme.example OK", "sender bounce@acme.example FAIL", "sender catchall@acme.example WARN",
			"mailjet-dkim acme.example OK", "mailjet-spf acme.example WARN",
			"ownership mailjet._tok.acme.example OK", "spf acme.example OK", "dkim mailjet._domainkey.acme.example OK",
			"dmarc _dmarc.acme.example OK"}},
		{"domain of the account, mjrelay check, SPF required", Readiness{MissingSender: Fail, RequireSPF: true}, snap, "acme.example", true, []string{
			"sender notifications@acme.example OK", "sender bounce@acme.example FAIL", "sender catchall@acme.example FAIL",
			"mailjet-dkim acme.example OK", "mailjet-spf acme.example FAIL",
			"ownership mailjet._tok.acme.example OK", "spf acme.example OK", "dkim mailjet._domainkey.acme.example OK",
			"dmarc _dmarc.acme.example OK"}},
		{"another domain", Readiness{MissingSender: Fail}, snap, "other.example", false, []string{
			"sender notifications@other.example FAIL", "sender bounce@other.example FAIL", "sender catchall@other.example FAIL",
			"domain other.example FAIL", "spf other.example FAIL", "dmarc _dmarc.other.example FAIL"}},
		{"account unknown", Readiness{MissingSender: Fail}, nil, "acme.example", false, []string{
			"spf acme.example OK", "dmarc _dmarc.acme.example OK"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := tc.r.Domain(context.Background(), c, tc.snap, tc.domain)
			var got []string
			fails := 0
			for _, res := range rep.Checks {
				got = append(got, fmt.Sprintf("%s %s %s", res.Check, res.Record, res.Status))
				if res.Status == Fail {
					fails++
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("checks\n%q\nwant\n%q", got, tc.want)
			}
			if rep.Domain != tc.domain || rep.InAccount != tc.inAccount || (rep.Mailjet != nil) != tc.inAccount {
				t.Errorf("report %s in account %v (%v)", rep.Domain, rep.InAccount, rep.Mailjet)
			}
			if n := Failures(rep.Checks); n != fails {
				t.Errorf("Failures = %d, want %d", n, fails)
			}
			if tc.inAccount {
				// The page shows the account part at once and the DNS part
				// from its last check: together, the same report.
				d, _ := tc.snap.Domain(tc.domain)
				page := append(tc.r.AccountChecks(tc.snap, d), c.Domain(context.Background(), d)...)
				if !reflect.DeepEqual(page, rep.Checks) {
					t.Errorf("AccountChecks + Checker.Domain differ from Domain:\n%+v\n%+v", page, rep.Checks)
				}
			}
		})
	}
}
