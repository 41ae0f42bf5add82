package policy

import (
	"mime"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/emersion/go-message/charset"

	"github.com/mjrelay/mjrelay/mailjet/account"
	"github.com/mjrelay/mjrelay/relay/config"
)

// Classes and the rules that choose them, as recorded with each message.
const (
	RuleLogin               = "login"
	RuleListUnsubscribePost = "list-unsubscribe-post"
	RulePrecedence          = "precedence"
	RuleMailjetPrio         = "x-mailjet-prio"
	RuleSenderEmailType     = "sender-email-type"
	RuleDefault             = "default"
)

// Facts are what classification reads from a message.
type Facts struct {
	HeaderFrom          string
	ListUnsubscribePost bool   // the header is present
	Precedence          string // its value
	MailjetPrio         string // X-Mailjet-Prio set by the client
}

// Classification is a message's lane and the rule that chose it.
type Classification struct {
	Class string // config.ClassTransactional or config.ClassBulk
	Rule  string
}

// Classifier sorts mail into the transactional and bulk lanes. First match
// wins: the login's class; Odoo's mass-mailing headers
// (List-Unsubscribe-Post, or Precedence list/bulk/junk); an X-Mailjet-Prio
// of 0 or 1 set by the client; the Mailjet sender's EmailType; otherwise
// transactional.
type Classifier struct {
	loginClass map[string]string
	acct       Account // nil: no sender EmailType
}

// NewClassifier builds a classifier; acct may be nil.
func NewClassifier(cfg *config.Config, acct Account) *Classifier {
	c := &Classifier{loginClass: map[string]string{}, acct: acct}
	if a, ok := acct.(*account.Cache); ok && a == nil {
		c.acct = nil // a typed nil
	}
	for _, u := range cfg.SMTP.Users {
		if u.Class != "" {
			c.loginClass[u.Username] = u.Class
		}
	}
	return c
}

// Classify picks the lane for a message sent by login.
func (c *Classifier) Classify(login string, f Facts) Classification {
	if cl, ok := c.loginClass[login]; ok && login != "" {
		return Classification{cl, RuleLogin}
	}
	if f.ListUnsubscribePost {
		return Classification{config.ClassBulk, RuleListUnsubscribePost}
	}
	switch strings.ToLower(strings.TrimSpace(f.Precedence)) {
	case "list", "bulk", "junk":
		return Classification{config.ClassBulk, RulePrecedence}
	}
	if p, err := strconv.Atoi(strings.TrimSpace(f.MailjetPrio)); err == nil && (p == 0 || p == 1) {
		return Classification{config.ClassBulk, RuleMailjetPrio}
	}
	if c.acct != nil && f.HeaderFrom != "" {
		if snap := c.acct.State().Snapshot; snap != nil {
			if m := snap.Authorize(f.HeaderFrom); m.Allowed {
				switch strings.ToLower(m.Sender.EmailType) {
				case "bulk":
					return Classification{config.ClassBulk, RuleSenderEmailType}
				case "transactional":
					return Classification{config.ClassTransactional, RuleSenderEmailType}
				}
			}
		}
	}
	return Classification{config.ClassTransactional, RuleDefault}
}

// odooMailing matches the mailing id in an Odoo unsubscribe URL:
// <base>/mailing/<id>/unsubscribe_oneclick?...
var odooMailing = regexp.MustCompile(`/mailing/(\d+)/`)

// MailingCampaign derives a Mailjet campaign name from an Odoo mass
// mailing's List-Unsubscribe header, so that Mailjet groups the mailing in
// its statistics: "odoo-<host>-mailing-<id>" (Mailjet allows letters,
// digits, space, dash and underscore). It returns "" for other mail.
//
// The value may be given raw or unfolded: Odoo's Python email library
// RFC 2047-encodes every header value longer than 77 characters, which real
// unsubscribe URLs always are, and folds it over several lines
// ("=?utf-8?q?=3Chttps=3A//erp=2Eexample=2Ecom/mailing/12/unsu?=" CRLF " =?utf-8?q?...?="),
// so it is unfolded and decoded first.
func MailingCampaign(listUnsubscribe string) string {
	for _, part := range strings.Split(decodeHeader(listUnsubscribe), ",") {
		raw := strings.Trim(strings.TrimSpace(part), "<>")
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
			continue
		}
		m := odooMailing.FindStringSubmatch(u.Path)
		if m == nil {
			continue
		}
		host := strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
				return r
			}
			return '-'
		}, strings.ToLower(u.Hostname()))
		name := "odoo-" + host + "-mailing-" + m[1]
		if len(name) > 255 {
			name = name[len(name)-255:]
		}
		return name
	}
	return ""
}

// decodeHeader unfolds a header field value (RFC 5322 2.2.3) and decodes
// its RFC 2047 encoded-words (whitespace between adjacent words goes, as the
// RFC says). A value that does not decode is returned unfolded.
func decodeHeader(v string) string {
	v = strings.NewReplacer("\r\n", "", "\n", "").Replace(v)
	if !strings.Contains(v, "=?") {
		return v
	}
	dec := mime.WordDecoder{CharsetReader: charset.Reader}
	if d, err := dec.DecodeHeader(v); err == nil {
		return d
	}
	return v
}
