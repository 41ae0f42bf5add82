package policy

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/mailjet/account"
)

// fakeAccount serves a fixed state; RefreshOnDemand switches to after (when
// set) and counts calls.
type fakeAccount struct {
	st        account.State
	after     *account.State
	refreshes int
	waited    int // refreshes asked with a live context (the caller waits)
}

func (f *fakeAccount) State() account.State { return f.st }

func (f *fakeAccount) RefreshOnDemand(ctx context.Context) account.State {
	f.refreshes++
	if ctx.Err() == nil {
		f.waited++
	}
	if f.after != nil {
		f.st = *f.after
	}
	return f.st
}

func testState() account.State {
	snap := account.NewSnapshot(time.Now(), "key", []account.Sender{
		{Email: "notifications@example.com", Status: account.StatusActive},
		{Email: "*@wild.example", Status: account.StatusActive},
		{Email: "pending@example.com", Status: account.StatusInactive},
		{Email: "*@inactive.example", Status: account.StatusInactive},
		{Email: "*@nospf.example", Status: account.StatusActive},
		{Email: "sales@other.example", Status: account.StatusActive},
	}, []account.Domain{
		{Domain: "example.com", DKIMStatus: "OK", SPFStatus: "OK"},
		{Domain: "wild.example", DKIMStatus: "Error", SPFStatus: "OK", DKIMRecordName: "mailjet._domainkey.wild.example"},
		{Domain: "nospf.example", DKIMStatus: "OK", SPFStatus: "Not found"},
		{Domain: "dnsonly.example", DKIMStatus: "Not checked", SPFStatus: "Not checked"},
	})
	return account.State{Snapshot: snap, Source: account.SourceAPI}
}

type ruleCase struct {
	name        string
	mode        string // default enforce
	noKeys      bool
	requireDKIM bool
	requireSPF  bool
	state       *account.State // default testState()
	after       *account.State
	login       string
	envelope    bool   // CheckEnvelope instead of CheckMessage
	addr        string // MAIL FROM for envelope cases, header From otherwise

	wantAllow     bool
	wantPending   bool // held: not allowed, no reply
	wantCode      int
	wantReason    string
	wantText      []string // substrings of Message (refusals) or of the joined Warnings (allowed)
	wantRefreshes int
}

func TestRule(t *testing.T) {
	unknown := account.State{LastError: "mailjet sender: API unreachable"}
	stale := testState()
	stale.Source, stale.Age, stale.LastError = account.SourceDisk, 3*time.Hour, "mailjet sender: HTTP 503"
	activated := testState()
	activated.Snapshot = account.NewSnapshot(time.Now(), "key",
		append(activated.Snapshot.Senders, account.Sender{Email: "new@example.com", Status: account.StatusActive}),
		activated.Snapshot.Domains)

	tests := []ruleCase{
		// Header From against Mailjet senders.
		{name: "exact", addr: "notifications@example.com", wantAllow: true},
		{name: "case-insensitive", addr: "Notifications@EXAMPLE.com", wantAllow: true},
		{name: "display name", addr: `"Admin" <notifications@example.com>`, wantAllow: true},
		{name: "wildcard, DKIM error is a warning", addr: "anyone@wild.example", wantAllow: true,
			wantText: []string{"DKIM status \"Error\""}},
		{name: "unknown", addr: "john@example.com", wantCode: 550, wantReason: "sender_not_found",
			wantText: []string{"john@example.com", "Senders & Domains", "*@example.com", "verified address"}, wantRefreshes: 1},
		{name: "unknown, non-ASCII", addr: "jöhn@example.com", wantCode: 550, wantReason: "sender_not_found",
			wantText: []string{"j?hn@example.com"}, wantRefreshes: 1},
		{name: "inactive", addr: "pending@example.com", wantCode: 550, wantReason: "sender_inactive",
			wantText: []string{"pending@example.com", "status Inactive", "Validate it"}, wantRefreshes: 1},
		{name: "inactive wildcard", addr: "x@inactive.example", wantCode: 550, wantReason: "sender_inactive",
			wantText: []string{"*@inactive.example", "Inactive"}, wantRefreshes: 1},
		{name: "no From", addr: "", wantCode: 550, wantReason: "header_from_invalid", wantRefreshes: 1},
		{name: "activated at Mailjet, seen after refresh", addr: "new@example.com", after: &activated,
			wantAllow: true, wantRefreshes: 1},
		{name: "require_dkim refuses", requireDKIM: true, addr: "anyone@wild.example", wantCode: 550,
			wantReason: "dkim_error", wantText: []string{"DKIM status \"Error\"", "mailjet._domainkey.wild.example"}, wantRefreshes: 1},
		{name: "require_dkim passes", requireDKIM: true, addr: "notifications@example.com", wantAllow: true},
		{name: "require_spf refuses", requireSPF: true, addr: "a@nospf.example", wantCode: 550,
			wantReason: "spf_error", wantText: []string{"SPF status \"Not found\"", "include:spf.mailjet.com"}, wantRefreshes: 1},
		{name: "SPF not found is a warning", addr: "a@nospf.example", wantAllow: true, wantText: []string{"SPF status"}},
		{name: "warn mode allows unknown", mode: "warn", addr: "john@example.com", wantAllow: true,
			wantReason: "sender_not_found", wantText: []string{"enforce would refuse with 550 5.7.1", "john@example.com"}, wantRefreshes: 1},
		{name: "warn mode allows require_dkim", mode: "warn", requireDKIM: true, addr: "anyone@wild.example",
			wantAllow: true, wantReason: "dkim_error", wantText: []string{"enforce would refuse"}, wantRefreshes: 1},
		{name: "off mode", mode: "off", addr: "john@example.com", wantAllow: true},
		{name: "sandbox", noKeys: true, addr: "john@example.com", wantAllow: true},
		{name: "state unknown", state: &unknown, addr: "notifications@example.com", wantPending: true,
			wantReason: "account_state_unknown", wantText: []string{"not known", "held", "API unreachable"}, wantRefreshes: 1},
		{name: "state unknown, refused sender too", state: &unknown, addr: "john@example.com", wantPending: true,
			wantReason: "account_state_unknown", wantText: []string{"held"}, wantRefreshes: 1},
		{name: "state known once the refresh started", state: &unknown, after: &activated, addr: "new@example.com",
			wantAllow: true, wantRefreshes: 1},
		{name: "state unknown, warn mode", mode: "warn", state: &unknown, addr: "notifications@example.com",
			wantAllow: true, wantReason: "account_state_unknown", wantText: []string{"not checked"}, wantRefreshes: 1},
		{name: "stale snapshot still enforced", state: &stale, addr: "notifications@example.com", wantAllow: true,
			wantText: []string{"3h0m0s old", "source disk", "HTTP 503"}},
		{name: "stale snapshot refuses unknown", state: &stale, addr: "john@example.com", wantCode: 550,
			wantReason: "sender_not_found", wantRefreshes: 1},

		// Envelope sender domain.
		{name: "envelope: domain with sender and dns entry", envelope: true, addr: "bounce@example.com", wantAllow: true},
		{name: "envelope: wildcard sender domain", envelope: true, addr: "bounce@wild.example", wantAllow: true},
		{name: "envelope: exact sender domain", envelope: true, addr: "bounce@other.example", wantAllow: true},
		{name: "envelope: dns entry only", envelope: true, addr: "bounce@dnsonly.example", wantAllow: true},
		{name: "envelope: case-insensitive", envelope: true, addr: "Bounce@DNSONLY.Example", wantAllow: true},
		{name: "envelope: only an inactive sender", envelope: true, addr: "bounce@inactive.example", wantCode: 550,
			wantReason: "envelope_domain_unknown", wantRefreshes: 1},
		{name: "envelope: unknown domain", envelope: true, addr: "bounce@unknown.example", wantCode: 550,
			wantReason: "envelope_domain_unknown", wantText: []string{"bounce@unknown.example", "unknown.example is not a sending domain", "Senders & Domains"}, wantRefreshes: 1},
		{name: "envelope: null sender", envelope: true, addr: "", wantCode: 550, wantReason: "envelope_invalid", wantRefreshes: 1},
		{name: "envelope: warn mode", mode: "warn", envelope: true, addr: "bounce@unknown.example", wantAllow: true,
			wantReason: "envelope_domain_unknown", wantText: []string{"enforce would refuse", "unknown.example"}, wantRefreshes: 1},
		{name: "envelope: off", mode: "off", envelope: true, addr: "bounce@unknown.example", wantAllow: true},
		{name: "envelope: state unknown", envelope: true, state: &unknown, addr: "bounce@example.com", wantPending: true,
			wantReason: "account_state_unknown", wantRefreshes: 1},

		// allowed_from (login odoo: *@example.com, sales@other.example).
		{name: "allowed_from wildcard", login: "odoo", addr: "notifications@example.com", wantAllow: true},
		{name: "allowed_from exact", login: "odoo", addr: "SALES@other.example", wantAllow: true},
		{name: "allowed_from refuses a Mailjet-verified address", login: "odoo", addr: "anyone@wild.example",
			wantCode: 550, wantReason: "not_allowed_for_login", wantText: []string{"Login odoo", "anyone@wild.example", "*@example.com, sales@other.example"}},
		{name: "allowed_from exact does not cover the domain", login: "odoo", addr: "other@other.example",
			wantCode: 550, wantReason: "not_allowed_for_login"},
		{name: "allowed_from with sender_check off", mode: "off", login: "odoo", addr: "anyone@wild.example",
			wantCode: 550, wantReason: "not_allowed_for_login"},
		{name: "allowed_from in sandbox", noKeys: true, login: "odoo", addr: "anyone@wild.example",
			wantCode: 550, wantReason: "not_allowed_for_login"},
		{name: "allowed_from in warn mode", mode: "warn", login: "odoo", addr: "anyone@wild.example",
			wantCode: 550, wantReason: "not_allowed_for_login"},
		{name: "allowed_from envelope domain", login: "odoo", envelope: true, addr: "bounce@other.example", wantAllow: true},
		{name: "allowed_from envelope other domain", login: "odoo", envelope: true, addr: "bounce@wild.example",
			wantCode: 550, wantReason: "not_allowed_for_login", wantText: []string{"envelope sender bounce@wild.example"}},
		{name: "allowed_from envelope in sandbox", noKeys: true, login: "odoo", envelope: true, addr: "bounce@wild.example",
			wantCode: 550, wantReason: "not_allowed_for_login"},
		{name: "login without allowed_from", login: "other", addr: "anyone@wild.example", wantAllow: true,
			wantText: []string{"DKIM"}},
		{name: "trusted network (no login)", login: "", addr: "anyone@wild.example", wantAllow: true,
			wantText: []string{"DKIM"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runRuleCase(t, tt) })
	}
}

func runRuleCase(t *testing.T, tt ruleCase) {
	o := Options{SenderCheck: ModeEnforce, HasKeys: !tt.noKeys, RequireDKIM: tt.requireDKIM, RequireSPF: tt.requireSPF,
		Logins: []Login{
			{Username: "odoo", AllowedFrom: []string{"*@example.com", "sales@other.example"}},
			{Username: "other"},
		}}
	if tt.mode != "" {
		o.SenderCheck = tt.mode
	}
	st := testState()
	if tt.state != nil {
		st = *tt.state
	}
	acct := &fakeAccount{st: st, after: tt.after}
	r, err := New(o, acct, nil)
	if err != nil {
		t.Fatal(err)
	}
	var v Verdict
	if tt.envelope {
		v = r.CheckEnvelope(context.Background(), tt.login, tt.addr)
	} else {
		v = r.CheckMessage(context.Background(), tt.login, "bounce@example.com", tt.addr)
	}
	if v.Allow != tt.wantAllow || v.Pending != tt.wantPending || v.Reason != tt.wantReason {
		t.Fatalf("verdict %+v; want allow %v pending %v reason %q", v, tt.wantAllow, tt.wantPending, tt.wantReason)
	}
	text := strings.Join(v.Warnings, " | ")
	switch {
	case v.Pending:
		// Held, not refused: no reply, and nobody waited for the refresh.
		text = v.Message
		if v.Code != 0 || acct.waited != 0 {
			t.Fatalf("pending verdict with code %d; %d refreshes waited for", v.Code, acct.waited)
		}
		checkReplyText(t, v.Message)
	case !v.Allow:
		text = v.Message
		if wantEnh := [3]int{5, 7, 1}; v.Code != tt.wantCode || v.Enhanced != wantEnh {
			t.Fatalf("code %d %v, want %d %v", v.Code, v.Enhanced, tt.wantCode, wantEnh)
		}
		checkReplyText(t, v.Message)
	case v.Code != 0 || v.Message != "":
		t.Fatalf("allowed verdict carries a reply: %+v", v)
	}
	for _, s := range tt.wantText {
		if !strings.Contains(text, s) {
			t.Errorf("%q does not contain %q", text, s)
		}
	}
	if tt.wantText == nil && v.Allow && len(v.Warnings) > 0 {
		t.Errorf("unexpected warnings %q", v.Warnings)
	}
	if acct.refreshes != tt.wantRefreshes {
		t.Errorf("%d on-demand refreshes, want %d", acct.refreshes, tt.wantRefreshes)
	}
}

func checkReplyText(t *testing.T, s string) {
	t.Helper()
	if s == "" || len(s) > MaxReplyText {
		t.Errorf("reply text length %d", len(s))
	}
	for _, r := range s {
		if r < 0x20 || r > 0x7e {
			t.Fatalf("reply text has %q: %q", r, s)
		}
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name        string
		keys        bool
		mode        string
		acct        Account
		allowedFrom []string
		wantErr     string
	}{
		{name: "enforce with account", keys: true, mode: "enforce", acct: &fakeAccount{}},
		{name: "enforce without account", keys: true, mode: "enforce", wantErr: "needs the Mailjet account cache"},
		{name: "enforce with a typed nil cache", keys: true, mode: "enforce", acct: (*account.Cache)(nil),
			wantErr: "needs the Mailjet account cache"},
		{name: "sandbox without account", keys: false, mode: "enforce"},
		{name: "off without account", keys: true, mode: "off"},
		{name: "bad mode", keys: true, mode: "strict", acct: &fakeAccount{}, wantErr: "sender_check"},
		{name: "allowed_from forms", allowedFrom: []string{"a@example.com", "*@example.org", "@example.net"}},
		{name: "allowed_from bare domain", allowedFrom: []string{"example.com"}, wantErr: `"odoo" allowed_from: "example.com"`},
		{name: "allowed_from partial wildcard", allowedFrom: []string{"a*@example.com"}, wantErr: "only *@domain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Options{SenderCheck: ModeEnforce, HasKeys: tt.keys, Logins: []Login{{Username: "odoo", AllowedFrom: tt.allowedFrom}}}
			if tt.mode != "" {
				o.SenderCheck = tt.mode
			}
			_, err := New(o, tt.acct, nil)
			if (err != nil) != (tt.wantErr != "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestReplyText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a\r\nb", "a b"},
		{"  two   spaces\tand tab ", "two spaces and tab"},
		{"caf\u00e9", "caf?"},
		{strings.Repeat("x", 500), strings.Repeat("x", MaxReplyText-3) + "..."},
	}
	for _, tt := range tests {
		if got := replyText(tt.in); got != tt.want {
			t.Errorf("replyText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
