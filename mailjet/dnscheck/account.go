package dnscheck

import (
	"fmt"
	"strings"

	"github.com/mjrelay/mjrelay/mailjet/account"
)

// Sender tells whether an Active sender of the account covers addr (Odoo
// sends as notifications@, bounce@ and catchall@ of its domain). missing is
// the status of an address the account does not know at all (Fail for
// `mjrelay check`, Warn on the web page, where it may just be unused).
func Sender(snap *account.Snapshot, addr string, missing Status) Result {
	r := Result{Check: "sender", Record: addr}
	_, domain, _ := account.SplitAddress(addr)
	m := snap.Authorize(addr)
	switch {
	case m.Allowed && m.Sender.IsWildcard():
		r.Status, r.Detail = OK, "covered by the Active domain sender "+m.Sender.Email
	case m.Allowed:
		r.Status, r.Detail = OK, "Active sender"
	case m.Found:
		r.Status = Fail
		r.Detail = fmt.Sprintf("sender %s has status %s", m.Sender.Email, m.Sender.Status)
		r.Fix = fmt.Sprintf("validate %s in Mailjet > Account settings > Senders & Domains (activation email, or publish the ownership TXT record)", m.Sender.Email)
	default:
		r.Status, r.Detail = missing, "not a sender of the Mailjet account"
		r.Fix = fmt.Sprintf("add sender %s (or *@%s for the whole domain) in Mailjet > Account settings > Senders & Domains and validate it", addr, domain)
	}
	return r
}

// MailjetStatus reports Mailjet's own last DKIM or SPF verdict for a domain;
// it fails only when the policy requires it (the relay then refuses the
// domain), and warns otherwise.
func MailjetStatus(check, what, domain, status string, required bool) Result {
	r := Result{Check: check, Record: domain, Status: OK, Detail: "Mailjet reports " + what + " " + status}
	if status == account.CheckOK {
		return r
	}
	r.Status = Warn
	if required {
		r.Status = Fail
		r.Detail += fmt.Sprintf(" and policy.require_%s is on: the relay refuses this domain", strings.ToLower(what))
	}
	r.Fix = "fix the " + what + " record, then run the check in Mailjet > Account settings > Senders & Domains > " + domain
	return r
}
