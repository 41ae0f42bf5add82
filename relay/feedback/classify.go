package feedback

import (
	"fmt"
	"strings"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/mailjet/webhook"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// reason is one of Mailjet's error_related_to / error pairs (mailjet.md §5)
// as the relay reads it: the RFC 3463 subject.detail of the Status it
// reports, and whether it is about the recipient's address. A block whose
// reason is about the address (it does not exist, its domain takes no
// mail, it bounced before and Mailjet preblocks it) is what the recipient's
// own server would have answered, so Odoo gets a DSN and counts a bounce;
// a block about the content, the sender's reputation, Mailjet's system or
// a duplicate in a campaign says nothing about the address, and counting it
// would let Odoo blacklist good addresses (after 5 bounces), so it is an
// alert instead.
type reason struct {
	detail      string
	recipients  bool
	explanation string
}

var reasons = map[string]reason{
	"recipient/user unknown":        {"1.1", true, "the address does not exist"},
	"recipient/mailbox inactive":    {"2.1", true, "the mailbox is disabled"},
	"recipient/quota exceeded":      {"2.2", true, "the mailbox is full"},
	"recipient/blacklisted":         {"7.1", true, "the address is on the Mailjet account's exclusion list"},
	"recipient/spam reporter":       {"7.1", true, "the recipient reported earlier mail as spam"},
	"domain/invalid domain":         {"1.2", true, "the domain does not exist"},
	"domain/no mail host":           {"4.4", true, "the domain has no mail server"},
	"domain/relay/access denied":    {"7.1", true, "the recipient's server refused the mail"},
	"domain/greylisted":             {"7.1", true, "the recipient's server kept deferring the mail (greylisting)"},
	"domain/typofix":                {"1.2", true, "the domain looks like a typing error"},
	"mailjet/preblocked":            {"1.0", true, "the address bounced or complained before, so Mailjet did not try it"},
	"mailjet/duplicate in campaign": {"0.0", false, "the address was twice in the same campaign"},
}

// familyReasons are the families none of whose errors is the recipient's.
var familyReasons = map[string]reason{
	"content": {"6.0", false, "the message's template or content was refused"},
	"spam":    {"7.1", false, "the message or its sender was judged as spam"},
	"system":  {"0.0", false, "a system, protocol or connection problem"},
}

func reasonOf(related, errText string) reason {
	related, errText = strings.ToLower(strings.TrimSpace(related)), strings.ToLower(strings.TrimSpace(errText))
	if r, ok := reasons[related+"/"+errText]; ok {
		return r
	}
	if r, ok := familyReasons[related]; ok {
		return r
	}
	if related == "recipient" || related == "domain" {
		return reason{"0.0", true, "the recipient's address or domain was refused"}
	}
	return reason{"0.0", false, "an unexplained refusal"}
}

// mailjetDSN is what a bounce or blocked event asks of Odoo: a DSN item
// (without the original's particulars), or an alert (ok false).
func mailjetDSN(ev *webhook.Event) (it Item, alert string, ok bool) {
	r := reasonOf(ev.ErrorRelatedTo, ev.Error)
	pair := strings.TrimSpace(ev.ErrorRelatedTo + ": " + ev.Error)
	if pair == ":" {
		pair = "no reason given"
	}
	it = Item{Recipient: strings.ToLower(strings.TrimSpace(ev.Email)), Trigger: TriggerBounce, Action: ActionDSN, Time: ev.Time}
	switch ev.Event {
	case "bounce":
		// The recipient's server refused it: what Odoo would have received
		// as a DSN without Mailjet in the way, whatever the reason.
		class, kind := "4", "soft"
		if ev.HardBounce {
			class, kind = "5", "hard"
		}
		it.Source, it.Status = "mailjet bounce", class+"."+r.detail
		it.Reason = fmt.Sprintf("The recipient's mail server refused this message (%s bounce reported by Mailjet: %s): %s.", kind, pair, r.explanation)
	case "blocked":
		if !r.recipients {
			return Item{}, fmt.Sprintf("blocked by Mailjet (%s): %s; not the recipient's fault, so not reported to Odoo as a bounce", pair, r.explanation), false
		}
		it.Source, it.Status = "mailjet blocked", "5."+r.detail
		it.Reason = fmt.Sprintf("Mailjet did not send this message (blocked: %s): %s.", pair, r.explanation)
	default:
		return Item{}, "", false
	}
	if ev.Comment != "" {
		it.Diagnostic = "smtp; " + ev.Comment
	} else {
		it.Diagnostic = "X-Mailjet; " + pair
	}
	return it, "", true
}

// relayDSNs are the DSN items of a failed event (the relay's own permanent
// failure): one per recipient, with that recipient's reply when the
// upstream gave one.
func relayDSNs(ev *trafficlog.Event) []Item {
	replies := map[string]mailjet.Reply{}
	for _, r := range ev.Rcpts {
		replies[strings.ToLower(r.Rcpt)] = r.Reply
	}
	var out []Item
	for _, rcpt := range ev.To {
		reply, ok := replies[strings.ToLower(rcpt)]
		if !ok {
			reply = ev.Reply
		}
		it := Item{Recipient: strings.ToLower(rcpt), Trigger: TriggerBounce, Action: ActionDSN, Source: "relay", Time: ev.Time,
			Status: relayStatus(reply)}
		why := ev.Reason
		if why == "" {
			why = "permanent error"
		}
		if reply.IsZero() {
			it.Diagnostic = "X-Mjrelay; " + why
			it.Reason = fmt.Sprintf("The mail relay could not deliver this message: %s.", why)
		} else {
			it.Diagnostic = "smtp; " + reply.String()
			it.Reason = fmt.Sprintf("The mail relay could not deliver this message (%s): %s.", why, reply.String())
		}
		if host, _, found := strings.Cut(ev.Upstream, ":"); host != "" && (found || ev.Upstream != "") {
			it.RemoteMTA = "dns; " + host
		}
		out = append(out, it)
	}
	return out
}

// relayStatus is the DSN Status of a relay failure: the reply's enhanced
// code, else 5.0.0 for a 5xx or no reply, 4.4.7 (delivery time expired)
// for a last reply that was temporary.
func relayStatus(r mailjet.Reply) string {
	if r.Enhanced != "" && (r.Enhanced[0] == '4' || r.Enhanced[0] == '5') {
		return r.Enhanced
	}
	if r.Class() == 4 {
		return "4.4.7"
	}
	return "5.0.0"
}
