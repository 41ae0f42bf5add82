package relay_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// TestFirstStartWithAPIDownHolds: a first start with keys and the Mailjet
// REST API down (no saved account state). Odoo's Test Connection
// succeeds; mail is accepted (250 after the fsync) and held, visible in
// the queue with why; once the API answers, the verified sender's mail is
// delivered and the unverified one's fails for good with the reply the
// relay gives when the state is known.
func TestFirstStartWithAPIDownHolds(t *testing.T) {
	api := account(t)
	api.SetDown(true)
	e := newEnv(t, mjtest.StartTLS, func(c *config.Config) {
		withAPI(api, "enforce")(c)
		c.HTTP.Listen = "127.0.0.1:0"
	})
	if e.r.Account.State().Known() {
		t.Fatal("the account state is known with the API down")
	}
	// Ready: it takes mail (a load balancer must keep sending it here).
	resp, err := http.Get("http://" + e.r.HTTPAddr().String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/readyz with the account state unknown: %s", resp.Status)
	}

	res := replay(t, "test-connection", "127.0.0.1", port(e.plainAddr()), "starttls", odooUser, odooPass, "notifications@example.com")
	if res["result"] != "Connection Test Successful!" {
		t.Fatalf("Odoo's Test Connection with the API down: %v", res)
	}
	res = replay(t, "batch", "127.0.0.1", port(e.tlsAddr()), "ssl", odooUser, odooPass, "3")
	if res["sent"] != float64(3) || len(res["errors"].([]any)) != 0 {
		t.Fatalf("Odoo's batch with the API down: %v", res)
	}
	c := e.client()
	const stranger = "From: stranger@example.net\r\nTo: c@example.org\r\nSubject: unverified\r\n\r\nhi\r\n"
	if _, err := send(c, "bounce@example.net", []string{"c@example.org"}, stranger); err != nil {
		t.Fatalf("unverified sender with the API down: %v", err)
	}
	c.Quit()

	const n = 5 // the batch's 3 + its SMTPUTF8 message + the stranger's
	e.waitFor("5 held messages", func() bool { return e.r.Sched().Depths()["transactional"].Held == n })
	for _, it := range e.r.Queue.List() {
		if !strings.Contains(it.Held(), "Mailjet account state is not known") {
			t.Errorf("%s: held %q", it.Envelope.ID, it.Held())
		}
	}
	if len(e.up.Received()) != 0 {
		t.Fatal("held mail went upstream")
	}

	api.SetDown(false)
	// The account cache is asked again at most every 10 s (on demand).
	deadline := time.Now().Add(40 * time.Second)
	for len(e.up.Received()) < n-1 || len(e.traffic.Events(trafficlog.Failed)) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("after the API came back: %d delivered, failed %+v", len(e.up.Received()), e.traffic.Events(trafficlog.Failed))
		}
		time.Sleep(20 * time.Millisecond)
	}
	f := e.traffic.Events(trafficlog.Failed)[0]
	if f.HeaderFrom != "stranger@example.net" || f.Reply.Code != 550 || f.Reply.Enhanced != "5.7.1" ||
		!strings.Contains(f.Reason, "stranger@example.net refused: it is not a sender of the Mailjet account") || f.Reason != f.Reply.Text {
		t.Fatalf("failed event %+v", f)
	}
	// The same text the SMTP reply carries now that the state is known.
	c = e.client()
	defer c.Quit()
	_, err = send(c, "bounce@example.net", []string{"c@example.org"}, stranger)
	if err == nil || !strings.Contains(err.Error(), f.Reason) {
		t.Fatalf("refusal now: %v; the held one failed with %q", err, f.Reason)
	}
	e.waitFor("the queue empty", func() bool { return e.r.Queue.Stats().Messages == 0 })
	if got := len(e.up.Received()); got != n-1 {
		t.Fatalf("%d messages upstream, want %d", got, n-1)
	}
}
