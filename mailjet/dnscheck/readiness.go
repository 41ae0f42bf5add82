package dnscheck

import (
	"context"

	"github.com/mjrelay/mjrelay/mailjet/account"
)

// aliases are the addresses Odoo sends as at its domain: notifications@
// (the rewritten From), bounce@ (the envelope sender) and catchall@
// (Reply-To). Its Mailjet guide asks for all three.
var aliases = []string{"notifications", "bounce", "catchall"}

// Readiness judges whether a sending domain is ready for Odoo's mail
// through Mailjet. `mjrelay check` and the web senders page both report it,
// with these settings.
type Readiness struct {
	// MissingSender is the status of an Odoo address that the account does
	// not know at all (see Sender).
	MissingSender Status
	// RequireDKIM and RequireSPF are policy.require_dkim and
	// policy.require_spf (see MailjetStatus).
	RequireDKIM, RequireSPF bool
}

// DomainReport is the readiness of one sending domain.
type DomainReport struct {
	Domain string `json:"domain"`
	// InAccount is true when the domain is a sending domain of the Mailjet
	// account; Mailjet is then the account's record of it.
	InAccount bool            `json:"in_account"`
	Mailjet   *account.Domain `json:"mailjet,omitempty"`
	Checks    []Result        `json:"checks"`
}

// AccountChecks are the checks of d, a domain of the account, that need no
// DNS lookup: Odoo's addresses at d covered by Active senders, and
// Mailjet's own DKIM and SPF verdicts.
func (r Readiness) AccountChecks(snap *account.Snapshot, d account.Domain) []Result {
	name := account.NormalizeDomain(d.Domain)
	return append(r.senders(snap, name),
		MailjetStatus("mailjet-dkim", "DKIM", name, d.DKIMStatus, r.RequireDKIM),
		MailjetStatus("mailjet-spf", "SPF", name, d.SPFStatus, r.RequireSPF))
}

// Domain reports on the sending domain name (normalized), running its DNS
// checks with c now. For a domain of the account: AccountChecks, then the
// four of Checker.Domain. For another domain: Odoo's addresses at it and a
// failed "domain" check; without a snapshot (the account is unknown),
// nothing of the account. In both cases then only the DNS checks that need
// none of Mailjet's record values: SPF and DMARC.
func (r Readiness) Domain(ctx context.Context, c Checker, snap *account.Snapshot, name string) DomainReport {
	rep := DomainReport{Domain: name}
	if snap != nil {
		if d, ok := snap.Domain(name); ok {
			rep.InAccount, rep.Mailjet = true, &d
			rep.Checks = append(r.AccountChecks(snap, d), c.Domain(ctx, d)...)
			return rep
		}
		rep.Checks = append(r.senders(snap, name), Result{Check: "domain", Status: Fail, Record: name,
			Detail: name + " is not a sending domain of the Mailjet account",
			Fix:    "add " + name + " in Mailjet > Account settings > Senders & Domains"})
	}
	rep.Checks = append(rep.Checks, c.SPF(ctx, name), c.DMARC(ctx, name))
	return rep
}

// senders checks Odoo's addresses at the domain name.
func (r Readiness) senders(snap *account.Snapshot, name string) []Result {
	var out []Result
	for _, alias := range aliases {
		out = append(out, Sender(snap, alias+"@"+name, r.MissingSender))
	}
	return out
}

// Failures counts the results that failed.
func Failures(rs []Result) int {
	n := 0
	for _, r := range rs {
		if r.Status == Fail {
			n++
		}
	}
	return n
}
