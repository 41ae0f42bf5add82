package feedback

import (
	"strings"
	"testing"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/mailjet/webhook"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// TestMailjetDSN: every error_related_to / error pair of Mailjet's
// documentation, as a bounce and as a block.
func TestMailjetDSN(t *testing.T) {
	tests := []struct {
		event, related, err string
		hard                bool
		status              string // "" = alert, no DSN
	}{
		{"bounce", "recipient", "user unknown", true, "5.1.1"},
		{"bounce", "recipient", "quota exceeded", false, "4.2.2"},
		{"bounce", "domain", "greylisted", false, "4.7.1"},
		{"bounce", "spam", "content blocked", true, "5.7.1"}, // the remote server refused it: Odoo would have had the DSN
		{"bounce", "system", "connection issue", false, "4.0.0"},
		{"blocked", "recipient", "user unknown", false, "5.1.1"},
		{"blocked", "recipient", "mailbox inactive", false, "5.2.1"},
		{"blocked", "recipient", "blacklisted", false, "5.7.1"},
		{"blocked", "recipient", "spam reporter", false, "5.7.1"},
		{"blocked", "domain", "invalid domain", false, "5.1.2"},
		{"blocked", "domain", "no mail host", false, "5.4.4"},
		{"blocked", "domain", "relay/access denied", false, "5.7.1"},
		{"blocked", "domain", "typofix", false, "5.1.2"},
		{"blocked", "mailjet", "preblocked", false, "5.1.0"},
		{"blocked", "Recipient", "Something New", false, "5.0.0"},
		{"blocked", "mailjet", "duplicate in campaign", false, ""},
		{"blocked", "content", "bad or empty template", false, ""},
		{"blocked", "content", "error in template language", false, ""},
		{"blocked", "spam", "sender blocked", false, ""},
		{"blocked", "spam", "content blocked", false, ""},
		{"blocked", "spam", "policy issue", false, ""},
		{"blocked", "system", "system issue", false, ""},
		{"blocked", "system", "protocol issue", false, ""},
		{"blocked", "", "", false, ""},
	}
	for _, tc := range tests {
		ev := &webhook.Event{Event: tc.event, Email: "Jane@Example.org", ErrorRelatedTo: tc.related, Error: tc.err, HardBounce: tc.hard}
		it, alert, ok := mailjetDSN(ev)
		switch {
		case tc.status == "" && (ok || alert == ""):
			t.Errorf("%s %s/%s: reported (%+v), want an alert", tc.event, tc.related, tc.err, it)
		case tc.status != "" && (!ok || it.Status != tc.status || it.Recipient != "jane@example.org" || it.Action != ActionDSN):
			t.Errorf("%s %s/%s: %+v %q, want status %s", tc.event, tc.related, tc.err, it, alert, tc.status)
		}
	}
	it, _, _ := mailjetDSN(&webhook.Event{Event: "bounce", Email: "a@b.c", HardBounce: true, ErrorRelatedTo: "recipient", Error: "user unknown",
		Comment: "550 5.1.1 <a@b.c>: no such user"})
	if it.Diagnostic != "smtp; 550 5.1.1 <a@b.c>: no such user" || !strings.Contains(it.Reason, "hard bounce") {
		t.Errorf("bounce item %+v", it)
	}
}

func TestRelayDSNs(t *testing.T) {
	ev := trafficlog.Event{To: []string{"a@x.org", "B@x.org"}, Upstream: "in-v3.mailjet.com:587", Reason: "permanent error from the upstream",
		Rcpts: []trafficlog.RcptResult{{Rcpt: "a@x.org", Reply: mailjet.ParseReply("550 5.1.1 No such user")},
			{Rcpt: "b@x.org", Reply: mailjet.ParseReply("554 Refused")}}}
	items := relayDSNs(&ev)
	if len(items) != 2 || items[0].Status != "5.1.1" || items[1].Status != "5.0.0" || items[1].Recipient != "b@x.org" ||
		items[0].Diagnostic != "smtp; 550 5.1.1 No such user" || items[0].RemoteMTA != "dns; in-v3.mailjet.com" {
		t.Fatalf("%+v", items)
	}
	expired := trafficlog.Event{To: []string{"c@x.org"}, Reply: mailjet.ParseReply("451 Try later"), Reason: "gave up after 9 attempts over 120h0m0s (queue.max_lifetime)"}
	if it := relayDSNs(&expired)[0]; it.Status != "4.4.7" || !strings.Contains(it.Reason, "max_lifetime") {
		t.Fatalf("expired: %+v", it)
	}
	unsupported := trafficlog.Event{To: []string{"d@x.org"}, Reason: "no transport of the bulk lane can carry this message"}
	if it := relayDSNs(&unsupported)[0]; it.Status != "5.0.0" || it.Diagnostic != "X-Mjrelay; no transport of the bulk lane can carry this message" {
		t.Fatalf("unsupported: %+v", it)
	}
}
