package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/store/storetest"
)

func TestPages(t *testing.T) {
	e := newEnv(t)
	ids := e.smp.IDs
	tests := []struct {
		path     string
		code     int
		want     []string
		dontWant []string
	}{
		{"/", 200, []string{"<svg", "Messages received", "Queue depth", "Delivery latency", "Failures by reason", "550 5.1.1",
			"sender_not_found", "recipient: user unknown", "transactional received"}, nil},
		{"/?window=7d", 200, []string{"<svg", `aria-current="true">7d`}, nil},
		{"/messages", 200, []string{"Invoice INV/2026/0042", "Spring newsletter", "Quotation S00017", "Order confirmation SO042",
			"Interview invitation", "spoof@evil.example"}, nil},
		{"/messages?to=" + url.QueryEscape("mr.x@client.example"), 200, []string{"Invoice INV/2026/0042"}, []string{"Spring newsletter"}},
		{"/messages?state=failed,bounced,blocked,refused,spam", 200, []string{"Spring newsletter", "Order confirmation SO042",
			"spoof@evil.example", `selected>problems`}, []string{"Invoice INV/2026/0042"}},
		{"/messages?q=quotation", 200, []string{"Quotation S00017"}, []string{"Invoice INV/2026/0042"}},
		{"/messages?state=bogus", 200, []string{"unknown state"}, nil},
		{"/messages/" + ids["invoice"], 200, []string{"Invoice INV/2026/0042", "Accepted by Mailjet", "Mailjet delivered to mr.x@client.example",
			"Download raw message", "Attempt 1 via api", "288230376151711744", "Sender policy: pass"}, []string{"Retry now"}},
		{"/messages/" + ids["retry"], 200, []string{"Retry now", "Delete from queue", "Deferred for buyer@slow.example", "421 4.7.0"}, nil},
		{"/messages/" + ids["newsletter"], 200, []string{"Bounced (hard) for old@gone.example", "recipient: user unknown"}, nil},
		{"/messages/nope", 404, []string{"No message with this id"}, nil},
		{"/queue", 200, []string{"Quotation S00017", "421 4.7.0 Try again later", "Retry all deferred now"}, nil},
		{"/senders", 200, []string{"acme.example", "news@acme.example", "Inactive", "*@acme.example"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			w := e.do(t, "GET", tc.path, nil)
			if w.Code != tc.code {
				t.Fatalf("%d, want %d", w.Code, tc.code)
			}
			body := w.Body.String()
			checkBody(t, body, tc.want, tc.dontWant)
		})
	}
}

// TestEscaping: what senders put in headers is shown, never interpreted.
func TestEscaping(t *testing.T) {
	e := newEnv(t)
	id := storetest.QueueID(t0.Add(time.Minute), 77)
	f := storetest.NewFlow(t0.Add(time.Minute), id, `x"><img src=x onerror=alert(1)>@evil.example`,
		[]string{"v@client.example"}, `<script>alert("subject")</script>`).Received(nil)
	for _, ev := range f.Events() {
		e.store.Record(ev)
	}
	if err := e.store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/messages", "/messages/" + id} {
		body := e.do(t, "GET", p, nil).Body.String()
		if strings.Contains(body, `<script>alert`) || strings.Contains(body, `<img src=x`) {
			t.Errorf("%s: header text is not escaped", p)
		}
		if !strings.Contains(body, "&lt;script&gt;alert(&#34;subject&#34;)&lt;/script&gt;") {
			t.Errorf("%s: the subject is not shown escaped", p)
		}
	}
}

func TestUIActions(t *testing.T) {
	e := newEnv(t)
	retry := e.smp.IDs["retry"]
	form := header("Content-Type", "application/x-www-form-urlencoded")
	tests := []struct {
		name, path, body string
		code             int
		location         string
	}{
		{"retry", "/messages/" + retry + "/retry", "", 303, "/messages/" + retry + "?done=retried"},
		{"retry from the queue page", "/messages/" + retry + "/retry", "return=%2Fqueue", 303, "/queue?done=retried"},
		{"no open redirect", "/messages/" + retry + "/retry", "return=https%3A%2F%2Fevil.example", 303, "/messages/" + retry + "?done=retried"},
		{"retry all", "/queue/retry", "", 303, "/queue?done=retried-all"},
		{"retry unknown", "/messages/" + e.smp.IDs["invoice"] + "/retry", "", 404, ""},
		{"delete", "/messages/" + retry + "/delete", "return=%2Fqueue", 303, "/queue?done=deleted"},
		{"delete again", "/messages/" + retry + "/delete", "", 404, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := e.do(t, "POST", tc.path, strings.NewReader(tc.body), form)
			if w.Code != tc.code || w.Header().Get("Location") != tc.location {
				t.Errorf("%d → %q, want %d → %q", w.Code, w.Header().Get("Location"), tc.code, tc.location)
			}
		})
	}
	if w := e.do(t, "GET", "/queue?done=deleted", nil); !strings.Contains(w.Body.String(), "Message deleted from the queue.") {
		t.Error("no confirmation after the redirect")
	}
	if code := e.do(t, "GET", "/messages/"+retry+"/retry", nil).Code; code != http.StatusMethodNotAllowed {
		t.Errorf("GET on an action: %d", code)
	}
}
