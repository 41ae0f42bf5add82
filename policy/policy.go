// Package policy decides who may send what through the relay: the login's
// allowed_from list and the From address against the senders verified in the
// Mailjet account (see package mailjet/account).
package policy

import "context"

// Verdict is the outcome of one check.
type Verdict struct {
	// Allow is true when the message may proceed.
	Allow bool
	// Pending is true (and Allow false) when the check could not run: the
	// Mailjet account state is not known yet. That is the relay's own
	// uncertainty, never the sender's fault: the intake accepts the mail,
	// holds it and runs the check again once the state is known. Message
	// says why it waits.
	Pending bool
	// Code and Enhanced are the SMTP reply of a refusal (Allow and Pending
	// false): 550 {5,7,1}.
	Code     int
	Enhanced [3]int
	// Message is the reply text, written for an Odoo admin (Odoo shows it
	// verbatim); for a pending verdict, why the message is held.
	Message string
	// Reason is a short machine-readable cause for the traffic log, e.g.
	// "sender_not_found", "sender_inactive", "dkim_error", "envelope_domain_unknown",
	// "not_allowed_for_login", "account_state_unknown".
	Reason string
	// Warnings are logged when the message is allowed anyway (warn mode, a bad
	// DKIM/SPF status that is not required, a stale snapshot).
	Warnings []string
}

// Checker is what the intake (relay/intake) calls.
type Checker interface {
	// CheckEnvelope runs at MAIL FROM (login is "" for trusted-network clients).
	CheckEnvelope(ctx context.Context, login, mailFrom string) Verdict
	// CheckMessage runs at the end of DATA with the header From address.
	CheckMessage(ctx context.Context, login, mailFrom, headerFrom string) Verdict
}

// AllowAll is the Checker used when no policy applies.
type AllowAll struct{}

func (AllowAll) CheckEnvelope(context.Context, string, string) Verdict { return Verdict{Allow: true} }
func (AllowAll) CheckMessage(context.Context, string, string, string) Verdict {
	return Verdict{Allow: true}
}
