package mailjet

import (
	"strconv"
	"strings"
)

// Reply is a reply in SMTP's shape: a code, an enhanced status code
// (RFC 3463) and a text. Mailjet's SMTP replies arrive in this shape; the
// Send API's answers are put in it (Code 0: no SMTP code, the text says
// what happened); the relay's own replies to its clients use it too. It is
// kept in parts and formatted only where it is shown or written, so that
// nothing has to parse a reply back.
type Reply struct {
	Code     int    // 250, 451, 550...; 0 when there was no reply (a network error, an HTTP answer)
	Enhanced string // "5.1.1", or "" when the reply had none
	Text     string
}

// String is the reply as it is written on the wire: "550 5.1.1 No such
// user", "250 OK", or the text alone when there is no code.
func (r Reply) String() string {
	var b strings.Builder
	if r.Code > 0 {
		b.WriteString(strconv.Itoa(r.Code))
		if r.Enhanced != "" {
			b.WriteByte(' ')
			b.WriteString(r.Enhanced)
		}
		if r.Text != "" {
			b.WriteByte(' ')
		}
	}
	b.WriteString(r.Text)
	return b.String()
}

// IsZero reports an empty reply.
func (r Reply) IsZero() bool { return r == Reply{} }

// Class is the reply code's first digit (2, 4, 5), or 0 without a code.
func (r Reply) Class() int { return r.Code / 100 }

// CodeText is the code as a metric label: "550", or "none".
func (r Reply) CodeText() string {
	if r.Code < 200 || r.Code > 599 {
		return "none"
	}
	return strconv.Itoa(r.Code)
}

// ParseReply reads a reply written by String (or by a server: "550-5.1.1
// text" counts too). A string that does not start with a code is all Text.
func ParseReply(s string) Reply {
	if len(s) < 3 || s[0] < '2' || s[0] > '5' || !digit(s[1]) || !digit(s[2]) || len(s) > 3 && s[3] != ' ' && s[3] != '-' {
		return Reply{Text: s}
	}
	r := Reply{Code: int(s[0]-'0')*100 + int(s[1]-'0')*10 + int(s[2]-'0')}
	rest := strings.TrimLeft(s[3:], " -")
	if f, after, _ := strings.Cut(rest, " "); enhanced(f) && f[0] == s[0] {
		r.Enhanced, rest = f, after
	}
	r.Text = rest
	return r
}

// MarshalText writes the reply as String does: logs and stored events keep
// the one-line form.
func (r Reply) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads what MarshalText wrote.
func (r *Reply) UnmarshalText(b []byte) error { *r = ParseReply(string(b)); return nil }

func digit(c byte) bool { return c >= '0' && c <= '9' }

// enhanced reports whether f looks like "5.1.1" (RFC 3463: class.subject.detail).
func enhanced(f string) bool {
	parts := strings.Split(f, ".")
	if len(parts) != 3 || len(f) > 11 {
		return false
	}
	for _, p := range parts {
		if p == "" || len(p) > 3 {
			return false
		}
		for i := 0; i < len(p); i++ {
			if !digit(p[i]) {
				return false
			}
		}
	}
	return true
}
