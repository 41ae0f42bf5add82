package relay_test

import (
	"strings"
	"testing"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// account is the Mailjet account the policy tests run against.
func account(t *testing.T) *mjtest.API {
	api := mjtest.NewAPI(apiKey, secretKey)
	t.Cleanup(api.Close)
	api.AddSender("*@example.com", "Active", "transactional")
	api.AddSender("ok@example.net", "Active", "unknown")
	api.AddSender("inactive@example.net", "Inactive", "unknown")
	return api
}

func TestOdooThroughSenderPolicy(t *testing.T) {
	api := account(t)
	e := newEnv(t, mjtest.StartTLS, withAPI(api, "enforce"))

	// Odoo's mails: envelope bounce@example.com, From john@example.com,
	// covered by the *@example.com sender.
	res := replay(t, "batch", "127.0.0.1", port(e.plainAddr()), "starttls", odooUser, odooPass, "20")
	if res["sent"] != float64(20) || res["utf8"] != "ok" {
		t.Fatalf("batch through the policy: %v", res)
	}
	e.waitDelivered(21)

	// Test Connection with a from_filter address in a domain the account
	// does not know fails, with the relay's text shown by Odoo.
	res = replay(t, "test-connection", "127.0.0.1", port(e.tlsAddr()), "ssl", odooUser, odooPass, "notifications@unknown-domain.test")
	msg, _ := res["result"].(string)
	if !strings.HasPrefix(msg, "The server refused the sender address (notifications@unknown-domain.test) with error 5.7.1") || !strings.Contains(msg, "unknown-domain.test") {
		t.Fatalf("Odoo would show: %q", msg)
	}
	// The good domain passes the test.
	res = replay(t, "test-connection", "127.0.0.1", port(e.tlsAddr()), "ssl", odooUser, odooPass, "notifications@example.com")
	if res["result"] != "Connection Test Successful!" {
		t.Fatalf("Test Connection: %v", res)
	}
}

func TestUnverifiedFromRefusedWithAdvice(t *testing.T) {
	api := account(t)
	e := newEnv(t, mjtest.StartTLS, withAPI(api, "enforce"))
	tests := []struct {
		from   string
		code   int
		want   []string
		reason string
		queued bool
	}{
		{"ok@example.net", 250, nil, "", true},
		{"OK@Example.NET", 250, nil, "", true},
		{"inactive@example.net", 550, []string{"inactive@example.net", "Inactive"}, "sender_inactive", false},
		{"stranger@example.net", 550, []string{"stranger@example.net", "Senders"}, "sender_not_found", false},
	}
	c := e.client()
	defer c.Quit()
	for _, tc := range tests {
		msg := "From: " + tc.from + "\r\nTo: c@example.org\r\nSubject: policy\r\n\r\nhi\r\n"
		_, err := send(c, "bounce@example.net", []string{"c@example.org"}, msg)
		if tc.queued {
			if err != nil {
				t.Errorf("%s: %v", tc.from, err)
			}
			continue
		}
		if smtpCode(err) != tc.code {
			t.Errorf("%s: %v, want %d", tc.from, err, tc.code)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: reply %q does not mention %q", tc.from, err, w)
			}
		}
		c.Reset()
		var logged bool
		for _, ev := range e.traffic.Events(trafficlog.Refused) {
			logged = logged || (ev.Reason == tc.reason && ev.HeaderFrom == strings.ToLower(tc.from) || ev.Reason == tc.reason && ev.HeaderFrom == tc.from)
		}
		if !logged {
			t.Errorf("%s: refusal not in the traffic log with reason %s", tc.from, tc.reason)
		}
	}
	e.waitDelivered(2)
	if n := len(e.up.Received()); n != 2 {
		t.Errorf("%d messages went upstream, want only the 2 verified", n)
	}
}

func TestSenderVerifiedAfterStartIsAccepted(t *testing.T) {
	api := account(t)
	e := newEnv(t, mjtest.StartTLS, withAPI(api, "enforce"))
	api.AddSender("new@example.net", "Active", "unknown") // verified after the relay read the account
	c := e.client()
	defer c.Quit()
	if _, err := send(c, "bounce@example.net", []string{"c@example.org"}, "From: new@example.net\r\nSubject: x\r\n\r\nhi\r\n"); err != nil {
		t.Fatalf("a sender verified after start is refused: %v", err)
	}
}

func TestAPIDownAtRestartKeepsLastSnapshot(t *testing.T) {
	api := account(t)
	e := newEnv(t, mjtest.StartTLS, withAPI(api, "enforce"))
	e.stop()
	api.SetDown(true)
	e.start()
	c := e.client()
	defer c.Quit()
	if _, err := send(c, "bounce@example.net", []string{"c@example.org"}, "From: ok@example.net\r\nSubject: x\r\n\r\nhi\r\n"); err != nil {
		t.Fatalf("verified sender with the API down: %v", err)
	}
	_, err := send(c, "bounce@example.net", []string{"c@example.org"}, "From: inactive@example.net\r\nSubject: x\r\n\r\nhi\r\n")
	if smtpCode(err) != 550 {
		t.Fatalf("inactive sender with the API down: %v, want 550 from the saved snapshot", err)
	}
}

func TestBadKeysStopTheStart(t *testing.T) {
	api := account(t)
	e := &env{t: t}
	full := newEnv(t, mjtest.StartTLS, withAPI(api, "enforce"))
	full.stop()
	*e = *full
	e.cfg.Mailjet.SecretKey = config.Secret("wrong-secret-value")
	err := e.tryStart()
	if err == nil {
		t.Fatal("started with keys Mailjet refuses")
	}
	if !strings.Contains(err.Error(), mailjet.MaskKey(apiKey)) || strings.Contains(err.Error(), apiKey) || strings.Contains(err.Error(), "wrong-secret-value") {
		t.Fatalf("error %q must name the API key (masked) and never the secret", err)
	}
}
