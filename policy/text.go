package policy

import (
	"net/mail"
	"strings"

	"github.com/mjrelay/mjrelay/mailjet/account"
)

// MaxReplyText bounds Verdict.Message: one SMTP reply line that Odoo shows
// verbatim.
const MaxReplyText = 400

// parseAddress accepts a bare address ("a@b"), an angle-addr ("<a@b>") or a
// header form ("Name" <a@b>) and returns the lower-cased address and its
// domain.
func parseAddress(s string) (addr, domain string, ok bool) {
	s = strings.TrimSpace(s)
	if strings.ContainsAny(s, "\"(") || (strings.Contains(s, "<") && !strings.HasPrefix(s, "<")) {
		a, err := mail.ParseAddress(s)
		if err != nil {
			return "", "", false
		}
		s = a.Address
	}
	return account.SplitAddress(s)
}

// replyText makes msg safe for one SMTP reply line: printable ASCII only
// (anything else becomes '?'), single spaces, at most MaxReplyText bytes.
func replyText(msg string) string {
	var b strings.Builder
	space := false
	for _, r := range msg {
		switch {
		case r == ' ' || r == '\t' || r == '\r' || r == '\n':
			space = true
			continue
		case r < 0x21 || r > 0x7e:
			r = '?'
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return truncate(b.String(), MaxReplyText)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n-3], "") + "..."
}
