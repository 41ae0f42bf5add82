// Package dnscheck checks, in live DNS, what Mailjet needs from a sending
// domain: the ownership TXT record, one SPF record that includes
// spf.mailjet.com, the DKIM key Mailjet signs with, and a DMARC policy
// (Checker). With the account's state it also checks that Odoo's addresses
// at the domain are Active senders and reports Mailjet's own DKIM and SPF
// verdicts (Sender, MailjetStatus). Readiness puts these together into the
// one report of a domain that both `mjrelay check` and the web senders page
// show. Every problem comes with the record or the action that fixes it.
package dnscheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/publicsuffix"

	"github.com/mjrelay/mjrelay/mailjet/account"
)

// Status of one check.
type Status string

// Statuses: OK passes, WARN is advice, FAIL must be fixed.
const (
	OK   Status = "OK"
	Warn Status = "WARN"
	Fail Status = "FAIL"
)

// Check names.
const (
	CheckOwnership = "ownership"
	CheckSPF       = "spf"
	CheckDKIM      = "dkim"
	CheckDMARC     = "dmarc"
)

// MailjetSPF is the include Mailjet needs in the SPF record.
const MailjetSPF = "spf.mailjet.com"

// Result is the outcome of one check.
type Result struct {
	Check  string `json:"check"`
	Status Status `json:"status"`
	// Record is the DNS name that was looked up.
	Record string `json:"record,omitempty"`
	Detail string `json:"detail"`
	// Fix is the exact record to add or change, or the action to take.
	Fix string `json:"fix,omitempty"`
}

// Resolver looks up TXT records; *net.Resolver implements it. Not-found
// answers must be *net.DNSError with IsNotFound set.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// NewResolver returns a resolver that sends every query to server
// ("host:port"), or the system resolver when server is "".
func NewResolver(server string) *net.Resolver {
	if server == "" {
		return net.DefaultResolver
	}
	d := net.Dialer{Timeout: 5 * time.Second}
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, server)
		},
	}
}

// Checker runs the checks with one resolver.
type Checker struct {
	Resolver Resolver
}

// Domain runs the four DNS checks for a domain of the account.
func (c Checker) Domain(ctx context.Context, d account.Domain) []Result {
	return []Result{
		c.Ownership(ctx, d.Domain, d.OwnershipRecord(), d.OwnerShipToken),
		c.SPF(ctx, d.Domain),
		c.DKIM(ctx, d.DKIMRecord(), d.DKIMRecordValue),
		c.DMARC(ctx, d.Domain),
	}
}

// lookup returns the TXT records of name; a name without TXT records gives
// (nil, nil).
func (c Checker) lookup(ctx context.Context, name string) ([]string, error) {
	txts, err := c.Resolver.LookupTXT(ctx, absolute(name))
	var de *net.DNSError
	if errors.As(err, &de) && de.IsNotFound {
		return nil, nil
	}
	return txts, err
}

// absolute adds the root dot so that resolv.conf search domains do not apply.
func absolute(name string) string {
	if strings.HasSuffix(name, ".") {
		return name
	}
	return name + "."
}

func lookupFailed(check, name string, err error) Result {
	return Result{Check: check, Status: Fail, Record: name,
		Detail: fmt.Sprintf("DNS lookup of %s failed: %v", name, err),
		Fix:    "check that the domain's name servers answer, then run the check again"}
}

func addTXT(name, value string) string { return fmt.Sprintf("add TXT record %q = %q", name, value) }

// Ownership checks <OwnerShipTokenRecordName>.<domain> TXT = OwnerShipToken.
func (c Checker) Ownership(ctx context.Context, domain, name, token string) Result {
	r := Result{Check: CheckOwnership, Record: name}
	if name == "" || token == "" {
		r.Status, r.Detail = Fail, "Mailjet gave no ownership token for "+domain
		r.Fix = "add " + domain + " in Mailjet > Account settings > Senders & Domains"
		return r
	}
	txts, err := c.lookup(ctx, name)
	if err != nil {
		return lookupFailed(CheckOwnership, name, err)
	}
	for _, t := range txts {
		if strings.TrimSpace(t) == token {
			r.Status, r.Detail = OK, "ownership token published"
			return r
		}
	}
	r.Status, r.Fix = Fail, addTXT(name, token)
	if len(txts) == 0 {
		r.Detail = "no TXT record at " + name
	} else {
		r.Detail = fmt.Sprintf("TXT record at %s is %q, not the ownership token", name, strings.Join(txts, `", "`))
	}
	return r
}

// DKIM checks that the TXT record at name carries the same public key as
// value (Mailjet's DKIMRecordValue).
func (c Checker) DKIM(ctx context.Context, name, value string) Result {
	r := Result{Check: CheckDKIM, Record: name}
	if name == "" || value == "" {
		r.Status, r.Detail = Fail, "Mailjet gave no DKIM record for this domain"
		r.Fix = "add the domain in Mailjet > Account settings > Senders & Domains and open its SPF/DKIM page"
		return r
	}
	txts, err := c.lookup(ctx, name)
	if err != nil {
		return lookupFailed(CheckDKIM, name, err)
	}
	want := dkimKey(value)
	for _, t := range txts {
		if dkimKey(t) == want {
			r.Status, r.Detail = OK, "DKIM key matches Mailjet's"
			return r
		}
	}
	r.Status = Fail
	if len(txts) == 0 {
		r.Detail, r.Fix = "no DKIM TXT record at "+name, addTXT(name, value)
	} else {
		r.Detail = "the DKIM key at " + name + " differs from the one Mailjet signs with"
		r.Fix = fmt.Sprintf("replace TXT record %q with %q", name, value)
	}
	return r
}

// dkimKey returns the p= tag of a DKIM key record, whitespace removed (DNS
// providers split long keys; the comparison must not care).
func dkimKey(v string) string {
	for _, tag := range strings.Split(v, ";") {
		k, val, _ := strings.Cut(tag, "=")
		if strings.TrimSpace(k) == "p" {
			return strings.Join(strings.Fields(val), "")
		}
	}
	return strings.Join(strings.Fields(v), "")
}

// DMARC checks for a DMARC record at _dmarc.<domain> (or, for a subdomain,
// at the organizational domain, whose sp= then applies) and its policy.
func (c Checker) DMARC(ctx context.Context, domain string) Result {
	name := "_dmarc." + domain
	r := Result{Check: CheckDMARC, Record: name}
	opts := &dmarc.LookupOptions{LookupTXT: func(n string) ([]string, error) {
		return c.Resolver.LookupTXT(ctx, absolute(n))
	}}
	rec, err := dmarc.LookupWithOptions(domain, opts)
	inherited := ""
	if errors.Is(err, dmarc.ErrNoPolicy) {
		if org, perr := publicsuffix.EffectiveTLDPlusOne(domain); perr == nil && !strings.EqualFold(org, domain) {
			if orec, oerr := dmarc.LookupWithOptions(org, opts); oerr == nil {
				rec, err, inherited = orec, nil, org
			} else if !errors.Is(oerr, dmarc.ErrNoPolicy) {
				err = oerr
			}
		}
	}
	switch {
	case errors.Is(err, dmarc.ErrNoPolicy):
		r.Status, r.Detail = Fail, "no DMARC record at "+name
		r.Fix = addTXT(name, "v=DMARC1; p=none; rua=mailto:dmarc-reports@"+domain) +
			" (start with p=none, move to p=quarantine once the reports show only legitimate mail)"
		return r
	case dmarc.IsTempFail(err):
		return lookupFailed(CheckDMARC, name, err)
	case err != nil:
		r.Status, r.Detail = Fail, fmt.Sprintf("invalid DMARC record at %s: %v", name, err)
		r.Fix = fmt.Sprintf("replace the TXT record %q with a valid one, e.g. %q", name, "v=DMARC1; p=none; rua=mailto:dmarc-reports@"+domain)
		return r
	}
	policy := rec.Policy
	if inherited != "" {
		r.Record = "_dmarc." + inherited
		if rec.SubdomainPolicy != "" {
			policy = rec.SubdomainPolicy
		}
	}
	r.Detail = "policy " + string(policy)
	if inherited != "" {
		r.Detail += " (inherited from " + inherited + ")"
	}
	if rec.Percent != nil && *rec.Percent < 100 {
		r.Detail += fmt.Sprintf(", pct=%d", *rec.Percent)
	}
	if policy == dmarc.PolicyNone {
		r.Status = Warn
		r.Detail += ": monitoring only, spoofed mail is still delivered"
		r.Fix = "once the DMARC reports show only legitimate mail, change p=none to p=quarantine in " + r.Record
		return r
	}
	r.Status = OK
	return r
}
