package relay_test

import (
	"bytes"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

func massMailing(i int) string {
	return fmt.Sprintf("From: news@example.com\r\nTo: c%d@example.org\r\nSubject: bulk-%d\r\n"+
		"List-Unsubscribe: <https://erp.example.com/mailing/42/unsubscribe_oneclick?document_id=%d&hash_token=x>\r\n"+
		"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nPrecedence: list\r\n\r\nNewsletter\r\n", i, i, i)
}

func TestClassificationAndHints(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("mass"), bcrypt.MinCost)
	e := newEnv(t, mjtest.StartTLS, func(c *config.Config) {
		c.SMTP.Users = append(c.SMTP.Users, config.User{Username: "mass", PasswordHash: config.Secret(hash), Class: "bulk"})
	})
	// Odoo's own bytes: Python's email library RFC 2047-encodes and folds
	// the 120-character unsubscribe URL.
	odoo, err := os.ReadFile("lanes/testdata/odoo_mailing.eml")
	if err != nil {
		t.Fatal(err)
	}
	c := e.client()
	tests := []struct {
		msg      string
		class    string
		rule     string
		prio     string
		campaign string
	}{
		{massMailing(1), "bulk", "list-unsubscribe-post", "1", "odoo-erp-example-com-mailing-42"},
		{string(odoo), "bulk", "list-unsubscribe-post", "1", "odoo-erp-example-com-mailing-12"},
		{"From: a@example.com\r\nPrecedence: bulk\r\nSubject: p\r\n\r\nx\r\n", "bulk", "precedence", "1", ""},
		{"From: a@example.com\r\nX-Mailjet-Prio: 0\r\nSubject: p0\r\n\r\nx\r\n", "bulk", "x-mailjet-prio", "0", ""},
		{"From: a@example.com\r\nSubject: reset password\r\n\r\nx\r\n", "transactional", "default", "2", ""},
	}
	for _, tc := range tests {
		if _, err := send(c, "bounce@example.com", []string{"c@example.org"}, tc.msg); err != nil {
			t.Fatal(err)
		}
	}
	c.Quit()
	got := e.waitDelivered(len(tests))
	for i, tc := range tests {
		var up *mjtest.Received
		for j := range got {
			if bytes.HasSuffix(got[j].Data, []byte(tc.msg)) {
				up = &got[j]
			}
		}
		if up == nil {
			t.Fatalf("message %d not upstream", i)
		}
		if v, _ := mailjet.HeaderValue(up.Data, "X-Mailjet-Prio"); v != tc.prio {
			t.Errorf("message %d: X-Mailjet-Prio %q, want %q", i, v, tc.prio)
		}
		if v, _ := mailjet.HeaderValue(up.Data, "X-Mailjet-Campaign"); v != tc.campaign {
			t.Errorf("message %d: X-Mailjet-Campaign %q, want %q", i, v, tc.campaign)
		}
		if n := bytes.Count(up.Data, []byte("X-Mailjet-Prio:")); n != 1 {
			t.Errorf("message %d: %d X-Mailjet-Prio headers", i, n)
		}
		rec := e.traffic.Events(trafficlog.Received)[i]
		if rec.Class != tc.class || rec.ClassRule != tc.rule {
			t.Errorf("message %d: class %s by %s, want %s by %s", i, rec.Class, rec.ClassRule, tc.class, tc.rule)
		}
	}
	// A login with class = "bulk" sends bulk whatever the headers say.
	mc, err := smtp.Dial(e.plainAddr())
	if err != nil {
		t.Fatal(err)
	}
	if err := mc.Auth(saslPlain("mass", "mass")); err != nil {
		t.Fatal(err)
	}
	if _, err := send(mc, "bounce@example.com", []string{"c@example.org"}, testMessage("by-login")); err != nil {
		t.Fatal(err)
	}
	mc.Quit()
	n := len(tests) + 1
	e.waitFor(fmt.Sprint(n, " received"), func() bool { return len(e.traffic.Events(trafficlog.Received)) == n })
	if r := e.traffic.Events(trafficlog.Received)[n-1]; r.Class != "bulk" || r.ClassRule != "login" {
		t.Errorf("login class: %s by %s", r.Class, r.ClassRule)
	}
}

// TestTransactionalOvertakesBulkBacklog: with a slow upstream and a backlog
// of mass mailing, password resets go out before the backlog drains.
func TestTransactionalOvertakesBulkBacklog(t *testing.T) {
	e := newEnv(t, mjtest.StartTLS, func(c *config.Config) {
		c.Routes.Bulk.Concurrency = 2
		c.Routes.Transactional.Concurrency = 4
	})
	e.up.SetDataDelay(50 * time.Millisecond)
	c := e.client()
	const bulk, urgent = 200, 10
	for i := 0; i < bulk; i++ {
		if _, err := send(c, "bounce@example.com", []string{fmt.Sprintf("c%d@example.org", i)}, massMailing(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < urgent; i++ {
		if _, err := send(c, "bounce@example.com", []string{"user@example.org"}, testMessage(fmt.Sprintf("reset-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	c.Quit()
	e.waitFor("the transactional mail", func() bool {
		n := 0
		for _, d := range e.traffic.Events(trafficlog.Delivered) {
			if d.Class == "transactional" {
				n++
			}
		}
		return n == urgent
	})
	bulkDone := 0
	for _, d := range e.traffic.Events(trafficlog.Delivered) {
		if d.Class == "bulk" {
			bulkDone++
		}
	}
	if bulkDone > bulk/2 {
		t.Fatalf("%d of %d bulk messages went out before the %d transactional ones", bulkDone, bulk, urgent)
	}
	t.Logf("transactional done with %d/%d bulk delivered", bulkDone, bulk)
}

// TestRetryingMessageDoesNotBlockItsLane: a message whose recipient keeps
// answering 4xx waits in the heap; the lane's next messages go on.
func TestRetryingMessageDoesNotBlockItsLane(t *testing.T) {
	e := newEnv(t, mjtest.StartTLS, func(c *config.Config) {
		c.Routes.Transactional.Concurrency = 1
		c.Queue.RetryMin, c.Queue.RetryMax = config.Duration(time.Hour), config.Duration(time.Hour)
	})
	e.up.SetRcptFault("full@example.org", mjtest.Fault{Code: 452, Enh: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"})
	c := e.client()
	send(c, "bounce@example.com", []string{"full@example.org"}, testMessage("stuck"))
	for i := 0; i < 5; i++ {
		send(c, "bounce@example.com", []string{"ok@example.org"}, testMessage(fmt.Sprintf("next-%d", i)))
	}
	c.Quit()
	e.waitDelivered(5)
	// The stuck message's attempt runs alongside the others; wait for its
	// deferral rather than assume it came first.
	e.waitFor("the stuck message deferred", func() bool { return e.r.Sched().Depths()["transactional"].Deferred == 1 })
	if got := len(e.up.Received()); got != 5 {
		t.Fatalf("%d messages upstream, want the 5 behind the stuck one", got)
	}
}

func TestLaneRateCap(t *testing.T) {
	e := newEnv(t, mjtest.StartTLS, func(c *config.Config) { c.Routes.Bulk.Rate = 2 })
	c := e.client()
	for i := 0; i < 6; i++ {
		send(c, "bounce@example.com", []string{"c@example.org"}, massMailing(i))
	}
	c.Quit()
	time.Sleep(time.Second)
	// At 2/s with a burst of 2, at most 4-5 can have left after a second;
	// without the cap all 6 leave within milliseconds.
	if n := len(e.up.Received()); n >= 6 {
		t.Fatalf("%d bulk messages upstream within a second at rate 2/s", n)
	}
	e.waitDelivered(6)
}

// TestBulkIntakeFollowsDelivery: while the bulk lane has more than
// flow_backlog messages ready, each new mass-mailing message's 250 waits
// (at most flow_delay) for one of the lane's deliveries; it is never
// refused, and transactional mail is not held.
func TestBulkIntakeFollowsDelivery(t *testing.T) {
	const delay = 300 * time.Millisecond
	e := newEnv(t, mjtest.StartTLS, func(c *config.Config) {
		// One bulk delivery, then none for a long while: only the first
		// can free a place, so the backlog stays.
		c.Routes.Bulk.Rate, c.Routes.Bulk.FlowBacklog, c.Routes.Bulk.FlowDelay = 0.001, 1, config.Duration(delay)
	})
	c := e.client()
	defer c.Quit()
	var paced time.Duration
	for i := 0; i < 6; i++ {
		start := time.Now()
		if _, err := send(c, "bounce@example.com", []string{"c@example.org"}, massMailing(i)); err != nil {
			t.Fatalf("bulk message %d: %v", i, err)
		}
		if i >= 3 {
			paced += time.Since(start)
		}
	}
	// From the 4th message on, 2 or more are ready over a backlog of 1; the
	// one delivery that ends frees one place, so two of the last three wait
	// the full flow_delay.
	if paced < 2*delay {
		t.Fatalf("the last three bulk messages took %v in all; want at least 2 × flow_delay (%v)", paced, delay)
	}
	if _, err := send(c, "bounce@example.com", []string{"user@example.org"}, testMessage("reset")); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the transactional message upstream", func() bool {
		for _, m := range e.up.Received() {
			if bytes.Contains(m.Data, []byte("Subject: reset")) {
				return true
			}
		}
		return false
	})
}
