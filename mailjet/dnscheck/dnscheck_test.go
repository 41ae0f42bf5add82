package dnscheck

import (
	"context"
	"errors"
	"io"
	"log"
	"strings"
	"testing"

	"github.com/foxcpp/go-mockdns"

	"github.com/mjrelay/mjrelay/mailjet/account"
)

func resolver(zones map[string]mockdns.Zone) Checker {
	return Checker{Resolver: &mockdns.Resolver{Zones: zones}}
}

func txt(values ...string) mockdns.Zone { return mockdns.Zone{TXT: values} }

type resultCase struct {
	name       string
	zones      map[string]mockdns.Zone
	run        func(Checker) Result
	wantStatus Status
	wantDetail string
	wantFix    string
}

func runCases(t *testing.T, tests []resultCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.run(resolver(tt.zones))
			if r.Status != tt.wantStatus || !strings.Contains(r.Detail, tt.wantDetail) || !strings.Contains(r.Fix, tt.wantFix) {
				t.Fatalf("got %+v\nwant status %s, detail ~ %q, fix ~ %q", r, tt.wantStatus, tt.wantDetail, tt.wantFix)
			}
			if r.Status == OK && r.Fix != "" {
				t.Fatalf("OK with a fix: %+v", r)
			}
			if r.Status == Fail && r.Fix == "" {
				t.Fatalf("FAIL without a fix: %+v", r)
			}
		})
	}
}

func TestOwnership(t *testing.T) {
	own := func(c Checker) Result {
		return c.Ownership(context.Background(), "example.com", "mailjet._abc.example.com", "abc123")
	}
	runCases(t, []resultCase{
		{"published", map[string]mockdns.Zone{"mailjet._abc.example.com.": txt("abc123")}, own, OK, "published", ""},
		{"among other records", map[string]mockdns.Zone{"mailjet._abc.example.com.": txt("other", " abc123 ")}, own, OK, "", ""},
		{"missing", nil, own, Fail, "no TXT record", `add TXT record "mailjet._abc.example.com" = "abc123"`},
		{"wrong value", map[string]mockdns.Zone{"mailjet._abc.example.com.": txt("abc124")}, own, Fail, `"abc124"`,
			`add TXT record "mailjet._abc.example.com" = "abc123"`},
		{"server failure", map[string]mockdns.Zone{"mailjet._abc.example.com.": {Err: errors.New("boom")}}, own, Fail,
			"lookup of mailjet._abc.example.com failed", "name servers"},
		{"no token from Mailjet", nil, func(c Checker) Result { return c.Ownership(context.Background(), "example.com", "", "") },
			Fail, "no ownership token", "Senders & Domains"},
	})
}

func TestSPF(t *testing.T) {
	spf := func(c Checker) Result { return c.SPF(context.Background(), "example.com") }
	runCases(t, []resultCase{
		{"direct include", map[string]mockdns.Zone{"example.com.": txt("google-site-verification=x", "v=spf1 include:spf.mailjet.com ~all")},
			spf, OK, "includes spf.mailjet.com", ""},
		{"case-insensitive", map[string]mockdns.Zone{"example.com.": txt("V=SPF1 mx INCLUDE:SPF.MAILJET.COM. -all")}, spf, OK, "", ""},
		{"through an include", map[string]mockdns.Zone{
			"example.com.":      txt("v=spf1 include:_spf.example.net -all"),
			"_spf.example.net.": txt("v=spf1 ip4:192.0.2.0/24 include:spf.mailjet.com ~all"),
		}, spf, OK, "via _spf.example.net", ""},
		{"through a redirect", map[string]mockdns.Zone{
			"example.com.":      txt("v=spf1 redirect=_spf.example.net"),
			"_spf.example.net.": txt("v=spf1 include:spf.mailjet.com ~all"),
		}, spf, OK, "via _spf.example.net", ""},
		{"no SPF record", map[string]mockdns.Zone{"example.com.": txt("google-site-verification=x")}, spf, Fail, "no SPF record",
			`add TXT record "example.com" = "v=spf1 include:spf.mailjet.com ~all"`},
		{"no TXT at all", nil, spf, Fail, "no SPF record", `add TXT record "example.com" = "v=spf1 include:spf.mailjet.com ~all"`},
		{"missing include", map[string]mockdns.Zone{"example.com.": txt("v=spf1 mx -all")}, spf, Fail, "does not include spf.mailjet.com",
			`replace TXT record "example.com" "v=spf1 mx -all" with "v=spf1 mx include:spf.mailjet.com -all"`},
		{"missing include, no all", map[string]mockdns.Zone{"example.com.": txt("v=spf1 mx")}, spf, Fail, "",
			`with "v=spf1 mx include:spf.mailjet.com"`},
		{"two SPF records", map[string]mockdns.Zone{"example.com.": txt("v=spf1 include:spf.mailjet.com ~all", "v=spf1 mx -all")},
			spf, Fail, "2 SPF records",
			`replace the SPF records of "example.com" with one TXT record "v=spf1 include:spf.mailjet.com mx ~all"`},
		{"include loop", map[string]mockdns.Zone{
			"example.com.": txt("v=spf1 include:a.example -all"),
			"a.example.":   txt("v=spf1 include:b.example -all"),
			"b.example.":   txt("v=spf1 include:a.example -all"),
		}, spf, Fail, "more than 10 DNS lookups", "include:spf.mailjet.com"},
		{"server failure", map[string]mockdns.Zone{"example.com.": {Err: errors.New("boom")}}, spf, Fail, "lookup", "name servers"},
	})
}

func TestMergeSPF(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{[]string{"v=spf1 mx -all", "v=spf1 include:spf.mailjet.com ~all"}, "v=spf1 mx include:spf.mailjet.com -all"},
		{[]string{"v=spf1 a", "v=spf1 a mx"}, "v=spf1 a mx include:spf.mailjet.com ~all"},
		{[]string{"v=spf1 redirect=_spf.example.net", "v=spf1 mx"}, "v=spf1 include:_spf.example.net mx include:spf.mailjet.com ~all"},
	}
	for _, tt := range tests {
		if got := mergeSPF(tt.in); got != tt.want {
			t.Errorf("mergeSPF(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDKIM(t *testing.T) {
	const name, value = "mailjet._domainkey.example.com", "k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAxyz"
	dkim := func(c Checker) Result { return c.DKIM(context.Background(), name, value) }
	runCases(t, []resultCase{
		{"same", map[string]mockdns.Zone{name + ".": txt(value)}, dkim, OK, "matches", ""},
		{"same key, other spacing", map[string]mockdns.Zone{name + ".": txt("k=rsa;p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A MIIBCgKCAQEAxyz;")},
			dkim, OK, "", ""},
		{"missing", nil, dkim, Fail, "no DKIM TXT record", `add TXT record "` + name + `" = "` + value + `"`},
		{"other key", map[string]mockdns.Zone{name + ".": txt("k=rsa; p=MIIBother")}, dkim, Fail, "differs",
			`replace TXT record "` + name + `" with "` + value + `"`},
		{"no value from Mailjet", nil, func(c Checker) Result { return c.DKIM(context.Background(), name, "") }, Fail, "no DKIM record", "Senders & Domains"},
	})
}

func TestDMARC(t *testing.T) {
	dmarcOf := func(d string) func(Checker) Result {
		return func(c Checker) Result { return c.DMARC(context.Background(), d) }
	}
	runCases(t, []resultCase{
		{"reject", map[string]mockdns.Zone{"_dmarc.example.com.": txt("v=DMARC1; p=reject; rua=mailto:d@example.com")},
			dmarcOf("example.com"), OK, "policy reject", ""},
		{"quarantine pct", map[string]mockdns.Zone{"_dmarc.example.com.": txt("v=DMARC1; p=quarantine; pct=50")},
			dmarcOf("example.com"), OK, "pct=50", ""},
		{"none", map[string]mockdns.Zone{"_dmarc.example.com.": txt("v=DMARC1; p=none")},
			dmarcOf("example.com"), Warn, "monitoring only", "p=quarantine"},
		{"missing", nil, dmarcOf("example.com"), Fail, "no DMARC record",
			`add TXT record "_dmarc.example.com" = "v=DMARC1; p=none; rua=mailto:dmarc-reports@example.com"`},
		{"subdomain inherits sp", map[string]mockdns.Zone{"_dmarc.example.com.": txt("v=DMARC1; p=none; sp=reject")},
			dmarcOf("mail.example.com"), OK, "policy reject (inherited from example.com)", ""},
		{"invalid", map[string]mockdns.Zone{"_dmarc.example.com.": txt("v=DMARC1; p=bogus")},
			dmarcOf("example.com"), Fail, "invalid DMARC record", "replace the TXT record"},
	})
}

// The checks work through a real DNS server on 127.0.0.1 and NewResolver,
// including a DKIM key longer than one 255-byte TXT string.
func TestDomainThroughDNSServer(t *testing.T) {
	key := "k=rsa; p=" + strings.Repeat("A", 392)
	d := account.Domain{Domain: "example.com", DKIMRecordName: "mailjet._domainkey.example.com", DKIMRecordValue: key,
		OwnerShipToken: "tok", OwnerShipTokenRecordName: "mailjet._tok"}
	srv, err := mockdns.NewServerWithLogger(map[string]mockdns.Zone{
		"example.com.":                    txt("v=spf1 include:spf.mailjet.com ~all"),
		"mailjet._domainkey.example.com.": txt(key),
		"mailjet._tok.example.com.":       txt("tok"),
		"_dmarc.example.com.":             txt("v=DMARC1; p=quarantine"),
	}, log.New(io.Discard, "", 0), false)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := Checker{Resolver: NewResolver(srv.LocalAddr().String())}
	for _, r := range c.Domain(context.Background(), d) {
		if r.Status != OK {
			t.Errorf("%+v", r)
		}
	}
}
