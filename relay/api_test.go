package relay_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/mailjet/sendapi/sendapitest"
	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/lanes"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

func withTransports(api *mjtest.API, transports ...string) func(*config.Config) {
	return func(c *config.Config) {
		c.Mailjet.APIURL = api.URL()
		c.Routes.Transactional.Transports = transports
		c.Routes.Bulk.Transports = transports
	}
}

// TestOdooCorpusThroughRelayToSendAPI sends messages built the way Odoo
// builds them through the relay with transport "api", and checks what the
// Send API emulator received field by field against Python's expectations.
func TestOdooCorpusThroughRelayToSendAPI(t *testing.T) {
	dir, cases := sendapitest.LoadCorpus(t, "../mailjet/sendapi/testdata/odoo_corpus.py")
	api := mjtest.NewAPI(apiKey, secretKey)
	defer api.Close()
	e := newEnv(t, mjtest.StartTLS, withTransports(api, "api"))
	c := e.client()
	defer c.Quit()
	for _, cs := range cases {
		t.Run(cs.Name, func(t *testing.T) {
			eml, err := os.ReadFile(filepath.Join(dir, cs.File))
			if err != nil {
				t.Fatal(err)
			}
			reply, err := send(c, "bounce@example.com", cs.Rcpts, string(eml))
			if err != nil {
				t.Fatal(err)
			}
			id := queueID(reply)
			e.waitFor("the outcome of "+id, func() bool {
				for _, ev := range e.traffic.Events("") {
					if ev.ID == id && (ev.Event == trafficlog.Delivered || ev.Event == trafficlog.Failed) {
						return true
					}
				}
				return false
			})
			if cs.Unsupported {
				for _, ev := range e.traffic.Events(trafficlog.Failed) {
					if ev.ID == id && strings.Contains(ev.Reason, cs.Reason) && strings.Contains(ev.Reason, "no transport") {
						return
					}
				}
				t.Fatalf("no failure naming %q for %s", cs.Reason, id)
			}
			var class string
			for _, ev := range e.traffic.Events(trafficlog.Received) {
				if ev.ID == id {
					class = ev.Class
				}
			}
			var got []mjtest.APISentMessage
			for _, m := range api.Sent() {
				if m.CustomID == id || m.CustomID != "" && m.CustomID == cs.Messages[0].CustomID && cs.Messages[0].CustomID != cs.ID {
					got = append(got, m)
				}
			}
			if len(got) != len(cs.Messages) {
				t.Fatalf("emulator got %d messages for %s, want %d", len(got), id, len(cs.Messages))
			}
			for i, want := range cs.Messages {
				// What the relay decides: its queue id, its lane's priority
				// and the campaign from the Odoo mailing id.
				if want.CustomID == cs.ID {
					want.CustomID = id
				}
				if _, set := mailjet.HeaderValue(eml, "X-Mailjet-Prio"); !set {
					p := e.cfg.Routes.Transactional.Priority
					if class == string(lanes.Bulk) {
						p = e.cfg.Routes.Bulk.Priority
					}
					want.Priority = &p
				}
				if _, set := mailjet.HeaderValue(eml, "X-Mailjet-Campaign"); !set {
					lu, _ := mailjet.HeaderValue(eml, "List-Unsubscribe")
					want.CustomCampaign = lanes.MailingCampaign(lu)
				}
				sendapitest.CheckMessage(t, &got[i].APISendMessage, &want)
			}
		})
	}
}

// TestFailoverSMTPToAPI: Mailjet's SMTP relay refuses every connection;
// the lane's next transport, the Send API, delivers, and after repeated
// failures SMTP is skipped for a cool-down.
func TestFailoverSMTPToAPI(t *testing.T) {
	api := mjtest.NewAPI(apiKey, secretKey)
	defer api.Close()
	e := newEnv(t, mjtest.StartTLS, withTransports(api, "smtp", "api"))
	e.up.Close() // nothing listens on the SMTP port any more
	c := e.client()
	const n = 6
	for i := 0; i < n; i++ {
		if _, err := send(c, "bounce@example.com", []string{"client@example.org"}, testMessage("failover")); err != nil {
			t.Fatal(err)
		}
	}
	c.Quit()
	// Wait on the relay's own record, not the emulator's count: the
	// emulator has the last message before the relay records its attempt.
	e.waitFor("delivery through the API", func() bool { return len(e.traffic.Events(trafficlog.Delivered)) == n })
	if got := len(api.Sent()); got != n {
		t.Errorf("emulator got %d messages, want %d", got, n)
	}
	byTransport := map[string]int{}
	for _, ev := range e.traffic.Events(trafficlog.Attempt) {
		byTransport[ev.Transport]++
	}
	if byTransport["api"] != n {
		t.Errorf("attempts by transport %v: want %d through the API", byTransport, n)
	}
	if byTransport["smtp"] == 0 || byTransport["smtp"] >= n {
		t.Errorf("attempts by transport %v: SMTP should be tried, then skipped while cooling down", byTransport)
	}
	for _, ev := range e.traffic.Events(trafficlog.Delivered) {
		if ev.Transport != "api" || len(ev.Rcpts) != 1 || ev.Rcpts[0].MessageID == 0 || ev.Rcpts[0].MessageUUID == "" {
			t.Errorf("delivered event %+v: want the API's message ids", ev)
		}
	}
}

// TestAPIErrorsAreClassified: a per-message 4xx from the Send API fails
// the message for good with Mailjet's error code; a 429 is retried.
func TestAPIErrorsAreClassified(t *testing.T) {
	api := mjtest.NewAPI(apiKey, secretKey)
	defer api.Close()
	api.SetSendCheckSenders(true) // send-0008 for a From no Active sender covers
	api.AddSender("*@example.com", "Active", "transactional")
	e := newEnv(t, mjtest.StartTLS, withTransports(api, "api"))
	api.SetRateLimited(2)
	c := e.client()
	send(c, "bounce@example.com", []string{"client@example.org"}, "From: john@example.com\r\nSubject: ok\r\n\r\nhi\r\n")
	send(c, "bounce@example.com", []string{"client@example.org"}, "From: stranger@elsewhere.example\r\nSubject: refused\r\n\r\nhi\r\n")
	c.Quit()
	e.waitFor("both outcomes", func() bool {
		return len(e.traffic.Events(trafficlog.Delivered))+len(e.traffic.Events(trafficlog.Failed)) == 2
	})
	f := e.traffic.Events(trafficlog.Failed)
	if len(f) != 1 || !strings.Contains(f[0].Reply.String(), "send-0008") || f[0].Subject != "refused" {
		t.Fatalf("failed events %+v", f)
	}
	if d := e.traffic.Events(trafficlog.Deferred); len(d) == 0 || !strings.Contains(d[0].Reply.String(), "429") {
		t.Fatalf("deferred events %+v: want the 429s retried", d)
	}
}
