package lanes

import (
	"strconv"
	"strings"

	"github.com/mjrelay/mjrelay/mailjet/account"
)

// The rules that choose a class, as recorded with each message.
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
	Class Class
	Rule  string
}

// Classifier sorts mail into the transactional and bulk lanes. First match
// wins: the login's class; Odoo's mass-mailing headers
// (List-Unsubscribe-Post, or Precedence list/bulk/junk); an X-Mailjet-Prio
// of 0 or 1 set by the client; the Mailjet sender's EmailType; otherwise
// transactional.
type Classifier struct {
	loginClass map[string]Class
	acct       Account // nil: no sender EmailType
}

// Account is the view of the Mailjet account the classifier reads the
// senders' EmailType from; *account.Cache implements it.
type Account interface {
	State() account.State
}

// ClassifierOptions configure a [Classifier].
type ClassifierOptions struct {
	// LoginClass maps a login to the class of all its mail; a login with
	// no class ("") is classified by its messages.
	LoginClass map[string]Class
	// Account is read for the Mailjet sender's EmailType; nil: not used.
	Account Account
}

// NewClassifier builds a classifier.
func NewClassifier(o ClassifierOptions) *Classifier {
	c := &Classifier{loginClass: map[string]Class{}, acct: o.Account}
	if a, ok := o.Account.(*account.Cache); ok && a == nil {
		c.acct = nil // a typed nil
	}
	for login, class := range o.LoginClass {
		if class != "" {
			c.loginClass[login] = class
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
		return Classification{Bulk, RuleListUnsubscribePost}
	}
	switch strings.ToLower(strings.TrimSpace(f.Precedence)) {
	case "list", "bulk", "junk":
		return Classification{Bulk, RulePrecedence}
	}
	if p, err := strconv.Atoi(strings.TrimSpace(f.MailjetPrio)); err == nil && (p == 0 || p == 1) {
		return Classification{Bulk, RuleMailjetPrio}
	}
	if c.acct != nil && f.HeaderFrom != "" {
		if snap := c.acct.State().Snapshot; snap != nil {
			if m := snap.Authorize(f.HeaderFrom); m.Allowed {
				switch strings.ToLower(m.Sender.EmailType) {
				case "bulk":
					return Classification{Bulk, RuleSenderEmailType}
				case "transactional":
					return Classification{Transactional, RuleSenderEmailType}
				}
			}
		}
	}
	return Classification{Transactional, RuleDefault}
}
