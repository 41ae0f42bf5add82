package smtpd

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestRcptsRefusal(t *testing.T) {
	long := strings.Repeat("a", 200) + "@" + strings.Repeat("b", 60) + ".example"
	tests := []struct {
		name      string
		rcpts     []string
		malformed string // this one's path did not parse
		limit     int
		code      int
		reason    string
		want      []string
		ok        int
	}{
		{name: "all good", rcpts: []string{"a@x.org", "b@x.org", "A@X.org", "c@x.org", "B@x.org"}, limit: 10, ok: 3},
		{name: "one bad", rcpts: []string{"a@x.org", "root@localhost"}, limit: 10, code: 550, reason: "bad_recipient", ok: 1,
			want: []string{"Message refused, sent to no one: a recipient address is not valid: <root@localhost> (\"localhost\" is not a fully qualified domain). Correct them in Odoo"}},
		{name: "malformed path", rcpts: []string{"a@x.org", "<a b@x.org>"}, malformed: "<a b@x.org>", limit: 10, code: 550, reason: "bad_recipient", ok: 1,
			want: []string{"<a b@x.org> (not an address (expected RCPT TO:<local-part@domain>))"}},
		{name: "many bad, three named", rcpts: []string{"a@l1", "b@l2", "c@l3", "d@l4", "e@l5", "ok@x.org"}, limit: 10, code: 550, reason: "bad_recipient", ok: 1,
			want: []string{"5 recipient addresses are not valid: <a@l1>", "<c@l3>", "; and 2 more."}},
		{name: "over the limit", rcpts: []string{"a@x.org", "b@x.org", "c@x.org", "a@x.org"}, limit: 2, code: 550, reason: "too_many_recipients", ok: 2,
			want: []string{"Message refused, sent to no one: 3 recipients, at most 2 per message (smtp.max_recipients)"}},
		{name: "bad and over", rcpts: []string{"a@x.org", "b@x.org", "c@nodot"}, limit: 1, code: 550, reason: "bad_recipient", ok: 1,
			want: []string{"<c@nodot>", "also 3 recipients, at most 1 per message"}},
		{name: "long and control characters", rcpts: []string{long, "x\x01y@x.org"}, limit: 10, code: 550, reason: "bad_recipient",
			want: []string{"<aaaaaaaa", "...>", "<x?y@x.org> (control characters"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r rcpts
			for _, to := range tc.rcpts {
				var m error
				if to == tc.malformed {
					m = errors.New("in mailbox: malformed dot-string")
				}
				r.add(to, m, tc.limit)
			}
			if len(r.ok) != tc.ok {
				t.Errorf("%d accepted, want %d: %v", len(r.ok), tc.ok, r.ok)
			}
			ref := r.refusal(tc.limit)
			if tc.code == 0 {
				if ref != nil {
					t.Fatalf("refused: %s", ref.Reply())
				}
				return
			}
			if ref == nil || ref.Code != tc.code || ref.Reason != tc.reason || ref.Stage != "data" {
				t.Fatalf("refusal %+v", ref)
			}
			for _, w := range tc.want {
				if !strings.Contains(ref.Text, w) {
					t.Errorf("%q lacks %q", ref.Text, w)
				}
			}
			if len(ref.Text) > maxReplyText || strings.ContainsFunc(ref.Text, func(c rune) bool { return c < 0x20 || c > 0x7e }) {
				t.Errorf("reply text not one printable line: %q", ref.Text)
			}
		})
	}
}

// TestRcptsBounded: a client may send any number of RCPTs; past the limit
// they are counted, not kept.
func TestRcptsBounded(t *testing.T) {
	var r rcpts
	for i := range 100000 {
		r.add(fmt.Sprintf("r%d@x.org", i), nil, 1000)
	}
	if len(r.ok) != 1000 || r.over != 99000 || len(r.seen) != 999 {
		t.Fatalf("kept %d, over %d, seen %d", len(r.ok), r.over, len(r.seen))
	}
}
