package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/foxcpp/go-mockdns"

	"github.com/mjrelay/mjrelay/mailjet/dnscheck"
	"github.com/mjrelay/mjrelay/mailjet/mjtest"
)

const (
	checkKey    = "0123456789abcdef0123456789abcdef"
	checkSecret = "s3cr3t-fedcba9876543210fedcba98"
	checkDKIM   = "k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAs0m3K3y" // realistic prefix, short for readable failures
)

// checkFixture is a Mailjet account and DNS where good.example is set up
// right; tests break one thing each.
type checkFixture struct {
	api   *mjtest.API
	zones map[string]mockdns.Zone
	extra string // more configuration
}

func newCheckFixture() *checkFixture {
	api := mjtest.NewAPI(checkKey, checkSecret)
	for _, a := range []string{"notifications", "bounce", "catchall"} {
		api.AddSender(a+"@good.example", mjtest.APIStatusActive, mjtest.APIEmailTransactional)
	}
	api.AddDomain(mjtest.APIDomain{Domain: "good.example", DKIMStatus: "OK", SPFStatus: "OK",
		DKIMRecordName: "mailjet._domainkey.good.example", DKIMRecordValue: checkDKIM,
		OwnerShipToken: "tok0123456789abcdef", OwnerShipTokenRecordName: "mailjet._tok01234"})
	return &checkFixture{api: api, zones: map[string]mockdns.Zone{
		"good.example.":                    {TXT: []string{"v=spf1 mx include:spf.mailjet.com -all", "google-site-verification=abc"}},
		"mailjet._domainkey.good.example.": {TXT: []string{checkDKIM}},
		"mailjet._tok01234.good.example.":  {TXT: []string{"tok0123456789abcdef"}},
		"_dmarc.good.example.":             {TXT: []string{"v=DMARC1; p=quarantine; rua=mailto:dmarc@good.example"}},
	}}
}

// run starts the DNS server and runs `mjrelay check` with a config pointing
// at the emulator.
func (f *checkFixture) run(t *testing.T, secret string, args ...string) (int, string) {
	t.Helper()
	defer f.api.Close()
	srv, err := mockdns.NewServerWithLogger(f.zones, log.New(io.Discard, "", 0), false)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "mjrelay.toml")
	err = os.WriteFile(conf, []byte(fmt.Sprintf("data_dir = %q\n[mailjet]\napi_key = %q\nsecret_key = %q\napi_url = %q\n",
		dir, checkKey, secret, f.api.URL())+f.extra), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	args = append([]string{"--config", conf, "--dns", srv.LocalAddr().String()}, args...)
	code := runCheck(context.Background(), args, &stdout, &stderr)
	out := stdout.String() + stderr.String()
	if strings.Contains(out, secret) {
		t.Fatalf("output reveals the secret key:\n%s", out)
	}
	return code, out
}

func TestCheckCommand(t *testing.T) {
	tests := []struct {
		name     string
		breakIt  func(*checkFixture)
		secret   string
		args     []string
		wantCode int
		want     []string
	}{
		{name: "good domain", wantCode: 0, want: []string{
			"Result: OK", "OK    API key 0123… accepted: 3 senders, 1 domains",
			"Active  transactional  notifications@good.example", "good.example  OK    OK",
			"OK    dmarc         _dmarc.good.example              policy quarantine"}},
		{name: "good domain via --domain", args: []string{"--domain", "GOOD.example."}, wantCode: 0, want: []string{"Result: OK"}},
		{name: "broken DKIM", wantCode: 1, breakIt: func(f *checkFixture) {
			f.zones["mailjet._domainkey.good.example."] = mockdns.Zone{TXT: []string{"k=rsa; p=MIIBold"}}
		}, want: []string{"FAIL  dkim", `fix: replace TXT record "mailjet._domainkey.good.example" with "` + checkDKIM + `"`}},
		{name: "missing DKIM", wantCode: 1, breakIt: func(f *checkFixture) {
			delete(f.zones, "mailjet._domainkey.good.example.")
		}, want: []string{`fix: add TXT record "mailjet._domainkey.good.example" = "` + checkDKIM + `"`}},
		{name: "SPF without the Mailjet include", wantCode: 1, breakIt: func(f *checkFixture) {
			f.zones["good.example."] = mockdns.Zone{TXT: []string{"v=spf1 mx -all"}}
		}, want: []string{"FAIL  spf", `fix: replace TXT record "good.example" "v=spf1 mx -all" with "v=spf1 mx include:spf.mailjet.com -all"`}},
		{name: "no SPF", wantCode: 1, breakIt: func(f *checkFixture) {
			f.zones["good.example."] = mockdns.Zone{TXT: []string{"google-site-verification=abc"}}
		}, want: []string{`fix: add TXT record "good.example" = "v=spf1 include:spf.mailjet.com ~all"`}},
		{name: "two SPF records", wantCode: 1, breakIt: func(f *checkFixture) {
			f.zones["good.example."] = mockdns.Zone{TXT: []string{"v=spf1 include:spf.mailjet.com ~all", "v=spf1 include:_spf.google.com ~all"}}
		}, want: []string{"2 SPF records", `fix: replace the SPF records of "good.example" with one TXT record "v=spf1 include:spf.mailjet.com include:_spf.google.com ~all"`}},
		{name: "missing DMARC", wantCode: 1, breakIt: func(f *checkFixture) {
			delete(f.zones, "_dmarc.good.example.")
		}, want: []string{"FAIL  dmarc", `fix: add TXT record "_dmarc.good.example" = "v=DMARC1; p=none; rua=mailto:dmarc-reports@good.example"`}},
		{name: "DMARC p=none is only a warning", wantCode: 0, breakIt: func(f *checkFixture) {
			f.zones["_dmarc.good.example."] = mockdns.Zone{TXT: []string{"v=DMARC1; p=none"}}
		}, want: []string{"WARN  dmarc", "Result: OK"}},
		{name: "missing ownership TXT", wantCode: 1, breakIt: func(f *checkFixture) {
			delete(f.zones, "mailjet._tok01234.good.example.")
		}, want: []string{"FAIL  ownership", `fix: add TXT record "mailjet._tok01234.good.example" = "tok0123456789abcdef"`}},
		{name: "missing notifications@", wantCode: 1, breakIt: func(f *checkFixture) {
			_ = f.api.SetSenderStatus("notifications@good.example", mjtest.APIStatusDeleted)
		}, want: []string{"FAIL  sender", "notifications@good.example", "fix: add sender notifications@good.example (or *@good.example for the whole domain)"}},
		{name: "bounce@ inactive", wantCode: 1, breakIt: func(f *checkFixture) {
			_ = f.api.SetSenderStatus("bounce@good.example", mjtest.APIStatusInactive)
		}, want: []string{"sender bounce@good.example has status Inactive", "fix: validate bounce@good.example in Mailjet"}},
		{name: "missing catchall@", wantCode: 1, breakIt: func(f *checkFixture) {
			_ = f.api.SetSenderStatus("catchall@good.example", mjtest.APIStatusDeleted)
		}, want: []string{"fix: add sender catchall@good.example"}},
		{name: "wildcard sender covers the aliases", wantCode: 0, breakIt: func(f *checkFixture) {
			for _, a := range []string{"notifications", "bounce", "catchall"} {
				_ = f.api.SetSenderStatus(a+"@good.example", mjtest.APIStatusDeleted)
			}
			f.api.AddSender("*@good.example", mjtest.APIStatusActive, "")
		}, want: []string{"covered by the Active domain sender *@good.example", "Result: OK"}},
		{name: "Mailjet DKIM status Error is a warning", wantCode: 0, breakIt: func(f *checkFixture) {
			_ = f.api.SetDomainStatus("good.example", "Error", "OK")
		}, want: []string{"WARN  mailjet-dkim", "run the check in Mailjet"}},
		{name: "domain not in the account", args: []string{"--domain", "other.example"}, wantCode: 1,
			want: []string{"other.example is not a sending domain", "fix: add other.example in Mailjet", "fix: add sender bounce@other.example"}},
		{name: "bad secret", secret: "wrong-secret", wantCode: 1,
			want: []string{`FAIL  mailjet: API key "0123…" was rejected`, "fix: copy the API key"}},
		{name: "API down", breakIt: func(f *checkFixture) { f.api.SetDown(true) }, wantCode: 1, want: []string{"HTTP 503"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newCheckFixture()
			if tt.breakIt != nil {
				tt.breakIt(f)
			}
			secret := tt.secret
			if secret == "" {
				secret = checkSecret
			}
			code, out := f.run(t, secret, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d", code, tt.wantCode)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q", w)
				}
			}
			if t.Failed() {
				t.Logf("output:\n%s", out)
			}
		})
	}
}

func TestCheckCommandJSON(t *testing.T) {
	for _, broken := range []bool{false, true} {
		f := newCheckFixture()
		if broken {
			delete(f.zones, "_dmarc.good.example.")
		}
		code, out := f.run(t, checkSecret, "--json")
		var rep checkReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("--json output does not parse: %v\n%s", err, out)
		}
		if rep.OK == broken || (code == 0) == broken || rep.API.Status != dnscheck.OK || len(rep.Senders) != 3 {
			t.Fatalf("broken=%v: exit %d, report %+v", broken, code, rep)
		}
		if len(rep.Domains) != 1 || rep.Domains[0].Domain != "good.example" || !rep.Domains[0].InAccount || rep.Domains[0].Mailjet == nil {
			t.Fatalf("domains %+v", rep.Domains)
		}
		var dmarc *dnscheck.Result
		for i, c := range rep.Domains[0].Checks {
			if c.Check == dnscheck.CheckDMARC {
				dmarc = &rep.Domains[0].Checks[i]
			}
		}
		if dmarc == nil || (dmarc.Status == dnscheck.Fail) != broken || (broken && !strings.Contains(dmarc.Fix, "_dmarc.good.example")) {
			t.Fatalf("broken=%v: dmarc %+v", broken, dmarc)
		}
	}
}

func TestCheckCommandUsage(t *testing.T) {
	tests := []struct {
		args []string
		want int
	}{
		{[]string{"--config", "/nonexistent/mjrelay.toml"}, 2},
		{[]string{"--bogus"}, 2},
		{[]string{"--config", "x", "extra"}, 2},
		{[]string{"--domain", "not a domain@", "--config", "x"}, 2},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		if got := runCheck(context.Background(), tt.args, &out, &out); got != tt.want {
			t.Errorf("%q: exit %d, want %d (%s)", tt.args, got, tt.want, out.String())
		}
	}
}
