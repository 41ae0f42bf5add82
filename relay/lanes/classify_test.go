package lanes_test

import (
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/mailjet/account"
	"github.com/mjrelay/mjrelay/relay/lanes"
)

type fixedAccount struct{ snap *account.Snapshot }

func (f fixedAccount) State() account.State { return account.State{Snapshot: f.snap} }

func TestClassify(t *testing.T) {
	logins := map[string]lanes.Class{"mailing": lanes.Bulk, "odoo": ""}
	snap := account.NewSnapshot(time.Now(), "k", []account.Sender{
		{Email: "news@example.com", Status: "Active", EmailType: "bulk"},
		{Email: "*@example.com", Status: "Active", EmailType: "transactional"},
		{Email: "promo@example.org", Status: "Inactive", EmailType: "bulk"},
	}, nil)
	c := lanes.NewClassifier(lanes.ClassifierOptions{LoginClass: logins, Account: fixedAccount{snap}})
	tests := []struct {
		name  string
		login string
		f     lanes.Facts
		want  lanes.Classification
	}{
		{"login class wins", "mailing", lanes.Facts{HeaderFrom: "john@example.com"}, lanes.Classification{"bulk", lanes.RuleLogin}},
		{"odoo mass mailing", "odoo", lanes.Facts{ListUnsubscribePost: true, Precedence: "list"}, lanes.Classification{"bulk", lanes.RuleListUnsubscribePost}},
		{"precedence bulk", "odoo", lanes.Facts{Precedence: " Bulk "}, lanes.Classification{"bulk", lanes.RulePrecedence}},
		{"precedence junk", "odoo", lanes.Facts{Precedence: "junk"}, lanes.Classification{"bulk", lanes.RulePrecedence}},
		{"precedence other", "odoo", lanes.Facts{Precedence: "first-class"}, lanes.Classification{"transactional", lanes.RuleDefault}},
		{"prio 1", "odoo", lanes.Facts{MailjetPrio: "1"}, lanes.Classification{"bulk", lanes.RuleMailjetPrio}},
		{"prio 0", "", lanes.Facts{MailjetPrio: "0"}, lanes.Classification{"bulk", lanes.RuleMailjetPrio}},
		{"prio 3", "odoo", lanes.Facts{MailjetPrio: "3"}, lanes.Classification{"transactional", lanes.RuleDefault}},
		{"sender bulk", "odoo", lanes.Facts{HeaderFrom: "News@Example.com"}, lanes.Classification{"bulk", lanes.RuleSenderEmailType}},
		{"sender transactional", "odoo", lanes.Facts{HeaderFrom: "john@example.com"}, lanes.Classification{"transactional", lanes.RuleSenderEmailType}},
		{"inactive sender ignored", "odoo", lanes.Facts{HeaderFrom: "promo@example.org"}, lanes.Classification{"transactional", lanes.RuleDefault}},
		{"nothing", "odoo", lanes.Facts{}, lanes.Classification{"transactional", lanes.RuleDefault}},
	}
	for _, tc := range tests {
		if got := c.Classify(tc.login, tc.f); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if got := lanes.NewClassifier(lanes.ClassifierOptions{LoginClass: logins}).Classify("odoo", lanes.Facts{HeaderFrom: "news@example.com"}); got.Rule != lanes.RuleDefault {
		t.Errorf("without an account: %+v", got)
	}
}
