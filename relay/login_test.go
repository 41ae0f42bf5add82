package relay_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// TestBadLoginSaysWhatToFix: what Odoo shows for a refused login names the
// fix, above all for its commonest mistake, the Mailjet keys entered in
// Odoo; each refusal is recorded with the reply smtplib got.
func TestBadLoginSaysWhatToFix(t *testing.T) {
	e := newEnv(t, mjtest.StartTLS, nil)
	tests := []struct {
		name, user, pass, says string
	}{
		{"wrong password", odooUser, "wrong", "use an mjrelay login from [[smtp.users]] (mjrelay hash-password), not the Mailjet API key"},
		{"Mailjet keys", apiKey, secretKey, "this user name is a Mailjet API key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.traffic.Events(trafficlog.Refused))
			res := replay(t, "test-connection", "127.0.0.1", port(e.plainAddr()), "starttls", tc.user, tc.pass, "notifications@example.com")
			shown, _ := res["result"].(string)
			if !strings.HasPrefix(shown, "Server replied with following exception:") || !strings.Contains(shown, "535") ||
				!strings.Contains(shown, tc.says) {
				t.Fatalf("Odoo shows %q; want a 535 saying %q", shown, tc.says)
			}
			// smtplib tries PLAIN, then LOGIN: two replies, both recorded.
			refused := e.traffic.Events(trafficlog.Refused)[before:]
			if len(refused) != 2 {
				t.Fatalf("%d refusals recorded, want 2 (PLAIN, LOGIN)", len(refused))
			}
			for _, ev := range refused {
				if !strings.Contains(shown, strings.TrimPrefix(ev.Reply.String(), "535 ")) || ev.Stage != "auth" {
					t.Errorf("recorded %s %q; Odoo shows %q", ev.Stage, ev.Reply, shown)
				}
				if strings.Contains(ev.Reply.String()+ev.User+ev.Reason, tc.pass) {
					t.Errorf("the password reached the record: %+v", ev)
				}
			}
		})
	}
}

// TestMalformedAuthIsRecordedAsSent: AUTH refusals that are not about the
// password are the relay's own too, recorded with the reply sent.
func TestMalformedAuthIsRecordedAsSent(t *testing.T) {
	e := newEnv(t, mjtest.StartTLS, nil)
	tests := []struct{ cmd, reply string }{
		{"AUTH CRAM-MD5", "504 5.5.4 "},
		{"AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("no separators")), "501 5.5.2 "},
	}
	for _, tc := range tests {
		rc := dialRaw(t, e.plainAddr())
		rc.cmd("EHLO x")
		r := rc.cmd(tc.cmd)
		rc.c.Close()
		if !strings.HasPrefix(r, tc.reply) {
			t.Errorf("%s: %q, want %s...", tc.cmd, r, tc.reply)
		}
		refused := e.traffic.Events(trafficlog.Refused)
		if len(refused) == 0 || refused[len(refused)-1].Reply.String() != r {
			t.Errorf("%s: the client got %q; recorded %+v", tc.cmd, r, refused)
		}
	}
}
