package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/mjrelay/mjrelay/mailjet/account"
)

// Account is the view of the Mailjet account the rule needs;
// *account.Cache implements it.
type Account interface {
	State() account.State
	// RefreshOnDemand refreshes the state (rate-limited) and waits for it
	// until ctx ends: with a ctx already done, it starts the refresh and
	// returns at once.
	RefreshOnDemand(ctx context.Context) account.State
}

// Sender-check modes (policy.sender_check).
const (
	ModeEnforce = "enforce"
	ModeWarn    = "warn"
	ModeOff     = "off"
)

// Rule is the sender policy:
//
//   - a login's allowed_from entries ("user@domain" or "*@domain") limit the
//     header From (exact or wildcard match) and the envelope sender (its
//     domain must be one of the entries' domains); this applies in every mode,
//     sandbox included;
//   - unless sender_check is off or the relay has no Mailjet keys, the header
//     From must be authorized by an Active Mailjet sender (exact address or
//     "*@domain"), the envelope sender's domain must be known to the account,
//     and with require_dkim/require_spf the From domain's DKIM/SPF status in
//     Mailjet must be OK. In warn mode these refusals become warnings.
//
// An address unknown to the current snapshot triggers one rate-limited
// on-demand refresh before the verdict. While the account state is unknown
// the verdict is pending (the intake holds the mail until it is known); a
// refresh is started without keeping the client waiting for it.
type Rule struct {
	mode        string
	mailjet     bool
	requireDKIM bool
	requireSPF  bool
	allowed     map[string][]string // login → entries, lower-cased, "*@domain" for wildcards
	acct        Account
	log         *slog.Logger
}

var _ Checker = (*Rule)(nil)

// Options are the sender policy's settings: the [policy] section and the
// logins' allowed_from lists.
type Options struct {
	// SenderCheck is ModeEnforce (also for ""), ModeWarn or ModeOff.
	SenderCheck string
	// RequireDKIM and RequireSPF refuse a From domain whose DKIM or SPF
	// status in Mailjet is not OK.
	RequireDKIM, RequireSPF bool
	// HasKeys is false when the relay has no Mailjet keys (sandbox): then
	// only allowed_from applies.
	HasKeys bool
	// Logins are the SMTP logins and their allowed_from entries.
	Logins []Login
}

// Login is one SMTP login's allowed_from list: "user@domain", "*@domain"
// or "@domain" entries (none: the login may send as anyone).
type Login struct {
	Username    string
	AllowedFrom []string
}

// New builds the rule. acct is the account cache; it is not used (and may
// be nil) when the relay has no Mailjet keys or sender_check is off.
func New(o Options, acct Account, log *slog.Logger) (*Rule, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if c, ok := acct.(*account.Cache); ok && c == nil {
		acct = nil // a typed nil would pass the acct == nil test below
	}
	log = log.With("component", "policy")
	r := &Rule{
		mode:        o.SenderCheck,
		requireDKIM: o.RequireDKIM,
		requireSPF:  o.RequireSPF,
		allowed:     map[string][]string{},
		log:         log,
	}
	if r.mode == "" {
		r.mode = ModeEnforce
	}
	var errs []error
	for _, u := range o.Logins {
		for _, e := range u.AllowedFrom {
			n, err := normalizeEntry(e)
			if err != nil {
				errs = append(errs, fmt.Errorf("smtp.users %q allowed_from: %w", u.Username, err))
				continue
			}
			r.allowed[u.Username] = append(r.allowed[u.Username], n)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	switch {
	case r.mode != ModeEnforce && r.mode != ModeWarn && r.mode != ModeOff:
		return nil, fmt.Errorf("policy.sender_check: %q is not enforce, warn or off", r.mode)
	case r.mode == ModeOff:
		log.Info("sender check against Mailjet is off (policy.sender_check = off); allowed_from still applies")
	case !o.HasKeys:
		log.Info("sender check against Mailjet skipped: no Mailjet keys (sandbox); allowed_from still applies",
			"sender_check", r.mode)
	case acct == nil:
		return nil, fmt.Errorf("policy: sender_check = %s needs the Mailjet account cache", r.mode)
	default:
		r.mailjet, r.acct = true, acct
		log.Info("sender check against Mailjet enabled", "sender_check", r.mode,
			"require_dkim", r.requireDKIM, "require_spf", r.requireSPF)
	}
	return r, nil
}

func normalizeEntry(e string) (string, error) {
	e = strings.TrimSpace(e)
	if strings.HasPrefix(e, "@") {
		e = "*" + e
	}
	addr, _, ok := account.SplitAddress(e)
	if !ok || strings.ContainsAny(e, " <>\"") {
		return "", fmt.Errorf("%q is neither an address nor *@domain", e)
	}
	if strings.Contains(addr[:strings.LastIndexByte(addr, '@')], "*") && !strings.HasPrefix(addr, "*@") {
		return "", fmt.Errorf("%q: only *@domain wildcards are supported", e)
	}
	return addr, nil
}

// CheckEnvelope implements [Checker]: allowed_from by domain, then the
// envelope domain must be a sending domain of the Mailjet account.
func (r *Rule) CheckEnvelope(ctx context.Context, login, mailFrom string) Verdict {
	addr, domain, ok := parseAddress(mailFrom)
	if v, refused := r.checkLogin(login, mailFrom, addr, domain, ok, true); refused {
		return v
	}
	if !r.mailjet {
		return Verdict{Allow: true}
	}
	return r.withAccount(ctx, func(snap *account.Snapshot) Verdict {
		if !ok {
			return refuse("envelope_invalid", fmt.Sprintf(
				"Envelope sender <%s> refused: Mailjet needs a sender address in a verified domain. "+
					"Set the bounce alias and alias domain in Odoo (Settings > Technical > Alias Domains).", mailFrom))
		}
		if snap.KnowsDomain(domain) {
			return Verdict{Allow: true}
		}
		return refuse("envelope_domain_unknown", fmt.Sprintf(
			"Envelope sender %s refused: %s is not a sending domain of the Mailjet account (no Active sender, no domain entry). "+
				"Add and verify %s in Mailjet > Account settings > Senders & Domains, or use an alias domain verified there in Odoo.",
			addr, domain, domain))
	})
}

// CheckMessage implements [Checker]: allowed_from, then the header From must
// be an Active Mailjet sender, then the required DKIM/SPF statuses.
func (r *Rule) CheckMessage(ctx context.Context, login, mailFrom, headerFrom string) Verdict {
	addr, domain, ok := parseAddress(headerFrom)
	if v, refused := r.checkLogin(login, headerFrom, addr, domain, ok, false); refused {
		return v
	}
	if !r.mailjet {
		return Verdict{Allow: true}
	}
	return r.withAccount(ctx, func(snap *account.Snapshot) Verdict {
		if !ok {
			return refuse("header_from_invalid", fmt.Sprintf(
				"Message refused: the From header %q has no usable address; Mailjet needs a verified sender address.", headerFrom))
		}
		return r.checkFrom(snap, addr, domain)
	})
}

func (r *Rule) checkFrom(snap *account.Snapshot, addr, domain string) Verdict {
	m := snap.Authorize(addr)
	switch {
	case !m.Allowed && !m.Found:
		return refuse("sender_not_found", fmt.Sprintf(
			"From address %s refused: it is not a sender of the Mailjet account. "+
				"Add and verify %s (or *@%s) in Mailjet > Account settings > Senders & Domains, or send as a verified address.",
			addr, addr, domain))
	case !m.Allowed:
		which := "its Mailjet sender"
		if m.Sender.IsWildcard() {
			which = "the Mailjet domain sender " + m.Sender.Email
		}
		return refuse("sender_inactive", fmt.Sprintf(
			"From address %s refused: %s has status %s, not Active. "+
				"Validate it in Mailjet > Account settings > Senders & Domains (activation email or DNS), or send as a verified address.",
			addr, which, m.Sender.Status))
	}
	d, hasDomain := snap.Domain(domain)
	dkim, spf := "no domain entry", "no domain entry"
	if hasDomain {
		dkim, spf = d.DKIMStatus, d.SPFStatus
	}
	if r.requireDKIM && dkim != account.CheckOK {
		rec := "mailjet._domainkey." + domain
		if hasDomain && d.DKIMRecord() != "" {
			rec = d.DKIMRecord()
		}
		return refuse("dkim_error", fmt.Sprintf(
			"From address %s refused: domain %s has DKIM status %q in Mailjet and policy.require_dkim is on. "+
				"Publish the DKIM TXT record %s shown in Mailjet > Senders & Domains and run the check there, or send from a domain whose DKIM is OK.",
			addr, domain, dkim, rec))
	}
	if r.requireSPF && spf != account.CheckOK {
		return refuse("spf_error", fmt.Sprintf(
			"From address %s refused: domain %s has SPF status %q in Mailjet and policy.require_spf is on. "+
				"Add include:spf.mailjet.com to the SPF TXT record of %s and run the check in Mailjet > Senders & Domains, or send from a domain whose SPF is OK.",
			addr, domain, spf, domain))
	}
	v := Verdict{Allow: true}
	if hasDomain && dkim != account.CheckOK {
		v.Warnings = append(v.Warnings, fmt.Sprintf("domain %s has DKIM status %q in Mailjet", domain, dkim))
	}
	if hasDomain && spf != account.CheckOK {
		v.Warnings = append(v.Warnings, fmt.Sprintf("domain %s has SPF status %q in Mailjet", domain, spf))
	}
	return v
}

// withAccount evaluates against the current snapshot; anything but "allow"
// gets one on-demand refresh and a second evaluation. While the state is
// unknown the verdict is pending at once: a refresh is started, and nobody
// waits for it. warn mode turns a refusal into warnings (and does not hold:
// the check could only warn); a stale snapshot adds a warning.
func (r *Rule) withAccount(ctx context.Context, eval func(*account.Snapshot) Verdict) Verdict {
	st := r.acct.State()
	if !st.Known() {
		kick, cancel := context.WithCancel(ctx)
		cancel()
		r.acct.RefreshOnDemand(kick)
		if st = r.acct.State(); !st.Known() {
			if r.mode == ModeWarn {
				return Verdict{Allow: true, Reason: "account_state_unknown",
					Warnings: []string{"sender_check=warn: not checked, the Mailjet account state is unknown"}}
			}
			return pending(st)
		}
	}
	v := eval(st.Snapshot)
	if !v.Allow {
		st = r.acct.RefreshOnDemand(ctx)
		v = eval(st.Snapshot)
	}
	if !v.Allow && r.mode == ModeWarn {
		v = Verdict{Allow: true, Reason: v.Reason, Warnings: append(v.Warnings,
			fmt.Sprintf("sender_check=warn: enforce would refuse with %d %d.%d.%d %s",
				v.Code, v.Enhanced[0], v.Enhanced[1], v.Enhanced[2], v.Message))}
	}
	if v.Allow && st.Stale() {
		w := fmt.Sprintf("Mailjet account snapshot is %s old (source %s)", st.Age.Round(time.Second), st.Source)
		if st.LastError != "" {
			w += "; last refresh failed: " + truncate(st.LastError, 160)
		}
		v.Warnings = append(v.Warnings, w)
	}
	return v
}

// checkLogin applies allowed_from. For the envelope only the domain must be
// one of the entries' domains (Odoo's envelope is bounce@, its From is
// notifications@ or a user); the header From must match an entry.
func (r *Rule) checkLogin(login, raw, addr, domain string, ok, envelope bool) (Verdict, bool) {
	entries := r.allowed[login]
	if login == "" || len(entries) == 0 {
		return Verdict{}, false
	}
	if ok {
		for _, e := range entries {
			eDomain := e[strings.LastIndexByte(e, '@')+1:]
			if (envelope && eDomain == domain) || e == addr || e == "*@"+domain {
				return Verdict{}, false
			}
		}
	}
	what, shown := "From address", addr
	if envelope {
		what = "envelope sender"
	}
	if !ok {
		shown = "<" + raw + ">"
	}
	list := entries
	if len(list) > 4 {
		list = append(list[:4:4], "...")
	}
	return refuse("not_allowed_for_login", fmt.Sprintf(
		"Login %s may not use the %s %s: its allowed_from permits %s. "+
			"Send from an allowed address in Odoo, or extend allowed_from for this login in the mjrelay configuration.",
		login, what, shown, strings.Join(list, ", "))), true
}

// pending is the verdict while the account state is unknown: why the
// message waits, with the last refresh error if there is one.
func pending(st account.State) Verdict {
	msg := "Sender not checked yet: the Mailjet account state is not known (no saved copy, and the Mailjet API has not answered yet); " +
		"the message is held and checked as soon as the state is known"
	if st.LastError != "" {
		msg += ". Last error: " + truncate(st.LastError, 160)
	}
	return Verdict{Pending: true, Reason: "account_state_unknown", Message: replyText(msg)}
}

func refuse(reason, msg string) Verdict {
	return Verdict{Code: 550, Enhanced: [3]int{5, 7, 1}, Reason: reason, Message: replyText(msg)}
}
