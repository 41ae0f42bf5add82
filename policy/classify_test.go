package policy_test

import (
	"context"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/mailjet/account"
	"github.com/mjrelay/mjrelay/policy"
	"github.com/mjrelay/mjrelay/relay/config"
)

type fixedAccount struct{ snap *account.Snapshot }

func (f fixedAccount) State() account.State { return account.State{Snapshot: f.snap} }
func (f fixedAccount) RefreshOnDemand(context.Context) account.State {
	return account.State{Snapshot: f.snap}
}

func TestClassify(t *testing.T) {
	cfg := config.Default()
	cfg.SMTP.Users = []config.User{{Username: "mailing", Class: "bulk"}, {Username: "odoo"}}
	snap := account.NewSnapshot(time.Now(), "k", []account.Sender{
		{Email: "news@example.com", Status: "Active", EmailType: "bulk"},
		{Email: "*@example.com", Status: "Active", EmailType: "transactional"},
		{Email: "promo@example.org", Status: "Inactive", EmailType: "bulk"},
	}, nil)
	c := policy.NewClassifier(cfg, fixedAccount{snap})
	tests := []struct {
		name  string
		login string
		f     policy.Facts
		want  policy.Classification
	}{
		{"login class wins", "mailing", policy.Facts{HeaderFrom: "john@example.com"}, policy.Classification{"bulk", policy.RuleLogin}},
		{"odoo mass mailing", "odoo", policy.Facts{ListUnsubscribePost: true, Precedence: "list"}, policy.Classification{"bulk", policy.RuleListUnsubscribePost}},
		{"precedence bulk", "odoo", policy.Facts{Precedence: " Bulk "}, policy.Classification{"bulk", policy.RulePrecedence}},
		{"precedence junk", "odoo", policy.Facts{Precedence: "junk"}, policy.Classification{"bulk", policy.RulePrecedence}},
		{"precedence other", "odoo", policy.Facts{Precedence: "first-class"}, policy.Classification{"transactional", policy.RuleDefault}},
		{"prio 1", "odoo", policy.Facts{MailjetPrio: "1"}, policy.Classification{"bulk", policy.RuleMailjetPrio}},
		{"prio 0", "", policy.Facts{MailjetPrio: "0"}, policy.Classification{"bulk", policy.RuleMailjetPrio}},
		{"prio 3", "odoo", policy.Facts{MailjetPrio: "3"}, policy.Classification{"transactional", policy.RuleDefault}},
		{"sender bulk", "odoo", policy.Facts{HeaderFrom: "News@Example.com"}, policy.Classification{"bulk", policy.RuleSenderEmailType}},
		{"sender transactional", "odoo", policy.Facts{HeaderFrom: "john@example.com"}, policy.Classification{"transactional", policy.RuleSenderEmailType}},
		{"inactive sender ignored", "odoo", policy.Facts{HeaderFrom: "promo@example.org"}, policy.Classification{"transactional", policy.RuleDefault}},
		{"nothing", "odoo", policy.Facts{}, policy.Classification{"transactional", policy.RuleDefault}},
	}
	for _, tc := range tests {
		if got := c.Classify(tc.login, tc.f); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if got := policy.NewClassifier(cfg, nil).Classify("odoo", policy.Facts{HeaderFrom: "news@example.com"}); got.Rule != policy.RuleDefault {
		t.Errorf("without an account: %+v", got)
	}
}

func TestMailingCampaign(t *testing.T) {
	tests := []struct{ in, want string }{
		{"<https://erp.example.com/mailing/12/unsubscribe_oneclick?document_id=3&email=a%40b.c&hash_token=x>", "odoo-erp-example-com-mailing-12"},
		{"<mailto:unsub@example.com>, <http://Odoo.Local:8069/mailing/7/unsubscribe_oneclick>", "odoo-odoo-local-mailing-7"},
		{"<https://erp.example.com/web/unsubscribe>", ""},
		{"", ""},
		// As Python's email library writes values over 77 characters: RFC
		// 2047 encoded-words, raw (folded) and unfolded (as textproto reads them).
		{"=?utf-8?q?=3Chttps=3A//erp=2Eexample=2Ecom/mailing/12/unsu?=\r\n =?utf-8?q?bscribe=5Foneclick=3Fdocument=5Fid=3D3?=\r\n =?utf-8?q?=3E?=", "odoo-erp-example-com-mailing-12"},
		{"=?utf-8?q?=3Chttps=3A//erp=2Eexample=2Ecom/mailing/12/unsu?= =?utf-8?q?bscribe=5Foneclick=3E?=", "odoo-erp-example-com-mailing-12"},
		{"=?UTF-8?B?PGh0dHBzOi8vZXJwLmV4YW1wbGUuY29tL21haWxpbmcvOS91bnN1YnNjcmliZV9vbmVjbGljaz4=?=", "odoo-erp-example-com-mailing-9"},
		{"=?iso-8859-1?q?=3Cmailto=3Aunsub=40example=2Ecom=3E=2C_=3Chttp=3A//odoo=2Elocal/mailing/7/u=3E?=", "odoo-odoo-local-mailing-7"},
		{"=?utf-8?q?=3Chttps=3A//erp=2Eexample=2Ecom/web/unsubscribe=3E?=", ""},
		{"=?utf-8?q?broken", ""},
	}
	for _, tc := range tests {
		if got := policy.MailingCampaign(tc.in); got != tc.want {
			t.Errorf("MailingCampaign(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
