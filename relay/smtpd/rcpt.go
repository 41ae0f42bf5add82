package smtpd

import (
	"fmt"
	"strings"

	"github.com/mjrelay/mjrelay/relay/intake"
)

// A transaction's recipients are all accepted or all refused: when a
// client sends several RCPTs and only some are refused, Python's smtplib
// (Odoo) does not raise, the message goes to the others and the refused
// ones are lost without a trace. So every RCPT gets 250; a recipient the
// relay would refuse (its syntax, one past smtp.max_recipients) is kept
// aside, and the whole message is refused at the end of DATA with a reply
// that names it.

// namedBad is how many bad recipients a refusal names.
const namedBad = 3

// rcpts are a transaction's recipients.
type rcpts struct {
	ok []string
	// first and seen are the recipients taken, lower-cased (ok and bad):
	// a map only from the second on (Odoo sends one per transaction).
	first string
	seen  map[string]bool
	bad   []badRcpt // the first namedBad
	nbad  int
	over  int // past smtp.max_recipients
}

// badRcpt is a recipient refused for its syntax, and why.
type badRcpt struct{ addr, why string }

// add takes one RCPT: to as the client sent it, malformed the parse error
// of a path go-smtp could not read (nil otherwise).
func (r *rcpts) add(to string, malformed error, limit int) {
	if malformed != nil {
		to = strings.TrimSuffix(strings.TrimPrefix(to, "<"), ">")
	}
	key := strings.ToLower(to)
	if key == r.first || r.seen[key] {
		return
	}
	var why string
	if malformed != nil {
		why = "not an address (expected RCPT TO:<local-part@domain>)"
	} else if err := checkAddress(to); err != nil {
		why = err.Error()
	}
	switch {
	case why != "":
		if len(r.bad) < namedBad {
			r.bad = append(r.bad, badRcpt{addr: printable(to, 60), why: printable(why, 80)})
		}
		r.nbad++
	case len(r.ok) >= limit:
		r.over++
		return // not kept: a client may send any number
	default:
		r.ok = append(r.ok, to)
	}
	switch {
	case r.first == "":
		r.first = key
	case r.seen == nil:
		r.seen = map[string]bool{key: true}
	default:
		r.seen[key] = true
	}
}

// all are the recipients to record with a refusal: the accepted ones and
// those named as bad.
func (r *rcpts) all() []string {
	out := append([]string(nil), r.ok...)
	for _, b := range r.bad {
		out = append(out, b.addr)
	}
	return out
}

// refusal is the whole message's refusal for its recipients, or nil.
func (r *rcpts) refusal(limit int) *intake.Refusal {
	var over string
	if r.over > 0 {
		over = fmt.Sprintf("%d recipients, at most %d per message (smtp.max_recipients): send it in smaller batches, or raise smtp.max_recipients",
			len(r.ok)+r.nbad+r.over, limit)
	}
	if r.nbad == 0 {
		if over == "" {
			return nil
		}
		return &intake.Refusal{Code: 550, Enhanced: [3]int{5, 5, 3}, Stage: "data", Reason: "too_many_recipients",
			Text: "Message refused, sent to no one: " + over}
	}
	var b strings.Builder
	if r.nbad == 1 {
		b.WriteString("Message refused, sent to no one: a recipient address is not valid: ")
	} else {
		fmt.Fprintf(&b, "Message refused, sent to no one: %d recipient addresses are not valid: ", r.nbad)
	}
	for i, x := range r.bad {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "<%s> (%s)", x.addr, x.why)
	}
	if more := r.nbad - len(r.bad); more > 0 {
		fmt.Fprintf(&b, "; and %d more", more)
	}
	b.WriteString(". Correct them in Odoo and send again")
	if over != "" {
		b.WriteString("; also " + over)
	}
	return &intake.Refusal{Code: 550, Enhanced: [3]int{5, 1, 3}, Stage: "data", Reason: "bad_recipient", Text: printable(b.String(), maxReplyText)}
}

// maxReplyText bounds a reply's text: one SMTP reply line is at most 512
// bytes.
const maxReplyText = 480

// printable keeps what a client sent readable in one reply line: printable
// ASCII (anything else is '?'), at most n bytes.
func printable(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
	if len(s) > n {
		s = s[:n-3] + "..."
	}
	return s
}
