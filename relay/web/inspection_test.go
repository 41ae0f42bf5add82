package web

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/mailjet/account"
	"github.com/mjrelay/mjrelay/relay/store/storetest"
)

// TestLiveFragments: the dashboard and the traffic list answer their
// scripts' polls with the part of the page that changes, and 304 while
// nothing did.
func TestLiveFragments(t *testing.T) {
	e := newEnv(t)
	// The dashboard shows the senders' DNS checks, which its first view
	// starts: let them end first.
	e.do(t, "GET", "/senders", nil)
	for {
		var rep SendersReport
		unmarshal(t, e.do(t, "GET", "/api/senders", nil).Body.Bytes(), &rep)
		if !rep.DNSChecking {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, path := range []string{"/?window=1h&fragment=live", "/messages?class=transactional&fragment=live"} {
		t.Run(path, func(t *testing.T) {
			w := e.do(t, "GET", path, nil)
			etag := w.Header().Get("ETag")
			if w.Code != 200 || etag == "" || strings.Contains(w.Body.String(), "<html") {
				t.Fatalf("%d, ETag %q: %.100s", w.Code, etag, w.Body)
			}
			if w := e.do(t, "GET", path, nil, header("If-None-Match", etag)); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
				t.Errorf("unchanged: %d with %d bytes, want 304", w.Code, w.Body.Len())
			}
			at := t0.Add(30 * time.Minute)
			id := storetest.QueueID(at, uint32(len(path)))
			e.record(t, storetest.NewFlow(at, id, "s@acme.example", []string{"r@x.example"}, "New one").Received(nil).Events()...)
			w = e.do(t, "GET", path, nil, header("If-None-Match", etag))
			if w.Code != 200 || w.Header().Get("ETag") == etag {
				t.Errorf("after a new message: %d, ETag %q", w.Code, w.Header().Get("ETag"))
			}
			if strings.HasPrefix(path, "/messages") && !strings.Contains(w.Body.String(), `data-id="`+id+`"`) {
				t.Error("the new message is not in the rows")
			}
		})
	}
	page := e.do(t, "GET", "/messages?class=bulk&since=24h", nil).Body.String()
	if !strings.Contains(page, `data-live="/messages?class=bulk&amp;fragment=live&amp;since=24h"`) {
		t.Error("the list does not poll with its filters")
	}
	if page := e.do(t, "GET", "/messages?cursor=1", nil).Body.String(); strings.Contains(page, "data-live=") {
		t.Error("an older page polls")
	}
}

// TestTrafficList: the list says why, at a glance, and filters by it.
func TestTrafficList(t *testing.T) {
	e := newEnv(t)
	id, _ := e.addRich(t, t0.Add(time.Minute), "https://t.example/p", "https://t.example/r", "4XqZ9k1aB2")
	tests := []struct {
		query    string
		want     []string
		dontWant []string
	}{
		{"", []string{`<a class="chip" href="/messages?reason=data%3a%20sender_not_found"`, "550 5.7.1 Sender spoof@evil.example is not a verified sender",
			"login odoo · 192.0.2.99:40000", "refused before its subject was read", `<a class="chip" href="/messages?reason=421%204.7.0"`, "Try again later",
			"recipient: user unknown", `aria-label="1 attachment(s)"`, `<option>550 5.1.1</option>`, `<option>421 4.7.0</option>`}, nil},
		{"?reason=" + url.QueryEscape("550 5.1.1"), []string{"Order confirmation SO042", `<option selected>550 5.1.1</option>`}, []string{"Quotation S00017", "Spring newsletter"}},
		{"?q=4XqZ9k1aB2", []string{`data-id="` + id + `"`}, []string{"Order confirmation SO042"}},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			body := e.do(t, "GET", "/messages"+tc.query, nil).Body.String()
			checkBody(t, body, tc.want, tc.dontWant)
		})
	}
	var p apiPage
	unmarshal(t, e.do(t, "GET", "/api/messages?reason="+url.QueryEscape("recipient: user unknown"), nil).Body.Bytes(), &p)
	if len(p.Messages) != 1 || p.Messages[0]["why"] != "recipient: user unknown" || p.Messages[0]["reply"] != "recipient: user unknown (550 5.1.1 no such user)" {
		t.Errorf("API reason filter: %v", p.Messages)
	}
	unmarshal(t, e.do(t, "GET", "/api/messages?q=4xqz9k1ab2", nil).Body.Bytes(), &p)
	if len(p.Messages) != 1 || p.Messages[0]["id"] != id || p.Messages[0]["attachments"] != 1.0 {
		t.Errorf("API upstream id search: %v", p.Messages)
	}
}

// TestOneTimeFormat: every time is a <time> in one format, UTC on the
// server (the script writes it in the browser's zone, UTC on hover).
func TestOneTimeFormat(t *testing.T) {
	e := newEnv(t)
	tm := regexp.MustCompile(`<time datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ" title="(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC)">(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC)</time>`)
	for _, path := range []string{"/messages", "/messages/" + e.smp.IDs["retry"], "/queue", "/senders"} {
		body := e.do(t, "GET", path, nil).Body.String()
		n := len(tm.FindAllString(body, -1))
		if n == 0 || n != strings.Count(body, "<time") {
			t.Errorf("%s: %d of %d times in the format", path, n, strings.Count(body, "<time"))
		}
		if strings.Contains(body, " UTC;") || regexp.MustCompile(`\d\d:\d\d:\d\d UTC[^<"]`).MatchString(body) {
			t.Errorf("%s: a time outside a <time> element", path)
		}
	}
	if body := e.do(t, "GET", "/messages/"+e.smp.IDs["retry"], nil).Body.String(); !strings.Contains(body, "; next attempt <time") {
		t.Error("the deferred step's next attempt is not a time")
	}
}

// TestDefaultWindow: a fresh install's dashboard shows the last hour.
func TestDefaultWindow(t *testing.T) {
	e := newEnv(t)
	if body := e.do(t, "GET", "/", nil).Body.String(); !strings.Contains(body, `aria-current="true">1h`) {
		t.Error("the dashboard's default window is not 1h")
	}
	var st struct {
		StepSeconds int   `json:"step_seconds"`
		Buckets     []any `json:"buckets"`
	}
	unmarshal(t, e.do(t, "GET", "/api/stats", nil).Body.Bytes(), &st)
	if st.StepSeconds != 60 || len(st.Buckets) != 60 {
		t.Errorf("stats: %d buckets of %d s", len(st.Buckets), st.StepSeconds)
	}
}

// TestSandboxHonest: in sandbox mode no figure claims Mailjet accepted
// anything, and sandboxed mail has its own counters and colour.
func TestSandboxHonest(t *testing.T) {
	e := newEnv(t, withOptions(func(o *Options) { o.Sandbox = true }))
	dash := e.do(t, "GET", "/", nil).Body.String()
	for _, bad := range []string{"accepted by Mailjet", "Delivery latency", "Mailjet&#39;s acceptance (", "bounce rate, 7 days"} {
		if strings.Contains(dash, bad) {
			t.Errorf("sandbox dashboard shows %q", bad)
		}
	}
	for _, want := range []string{`<a class="card sandbox" href="/messages?state=sandboxed&amp;since=1h"><span class="n">1</span><span class="label">sandboxed: recorded, not sent`,
		"sandboxed, not sent: 1", "nothing reaches Mailjet"} {
		if !strings.Contains(dash, want) {
			t.Errorf("sandbox dashboard lacks %q", want)
		}
	}
	msg := e.do(t, "GET", "/messages/"+e.smp.IDs["sandbox"], nil).Body.String()
	if strings.Contains(msg, "to Mailjet&#39;s acceptance") || !strings.Contains(msg, "Mailjet never saw this message") ||
		!strings.Contains(msg, `class="badge big sandbox"`) {
		t.Error("the sandboxed message claims Mailjet's acceptance, or has no colour of its own")
	}
	// Not in sandbox mode: sandboxed mail (a lane routed to the sandbox) is
	// still not counted as accepted by Mailjet.
	e = newEnv(t)
	dash = e.do(t, "GET", "/", nil).Body.String()
	if !strings.Contains(dash, `<span class="n">2</span><span class="label">accepted by Mailjet`) ||
		!strings.Contains(dash, `<span class="n">1</span><span class="label">sandboxed: recorded, not sent`) {
		t.Error("delivered and sandboxed are not counted apart")
	}
}

// TestSendersPageSays: the senders page says what the relay does with mail
// in each mode (warn mode never answers 451; sandbox mode sends nothing).
func TestSendersPageSays(t *testing.T) {
	unknown := withDeps(func(d *Deps) { d.Account = fakeAccount{} })
	exactOnly := withDeps(func(d *Deps) {
		d.Account = fakeAccount{st: account.State{Source: account.SourceAPI, LastAttempt: t0, Snapshot: account.NewSnapshot(t0, apiKey,
			[]account.Sender{{ID: 2, Email: "news@acme.example", Status: account.StatusInactive}}, nil)}}
	})
	mode := func(m string, sandbox bool) envOpt {
		return withOptions(func(o *Options) { o.SenderCheck, o.Sandbox = m, sandbox })
	}
	tests := []struct {
		name     string
		opts     []envOpt
		want     []string
		dontWant []string
	}{
		{"enforce", []envOpt{mode("enforce", false)}, []string{"refused at SMTP with 550 5.7.1", "accepted and sent (any address of the domain)",
			"accepted and sent (covered by *@acme.example)"}, []string{"Sandbox mode"}},
		{"enforce, unknown account", []envOpt{mode("enforce", false), unknown}, []string{"every sender gets 451 4.7.0"}, nil},
		{"warn, unknown account", []envOpt{mode("warn", false), unknown}, []string{"accepted unchecked", "no mail is refused for its sender"},
			[]string{"451"}},
		{"warn", []envOpt{mode("warn", false), exactOnly}, []string{"accepted and sent, with a warning"}, []string{"refused (550 5.7.1)", "451"}},
		{"enforce, inactive sender", []envOpt{mode("enforce", false), exactOnly}, []string{"refused (550 5.7.1)"}, nil},
		{"sandbox", []envOpt{mode("enforce", true)}, []string{"nothing reaches Mailjet", "accepted and recorded, not sent"}, []string{"accepted and sent"}},
		{"off, sandbox", []envOpt{mode("off", true), withDeps(func(d *Deps) { d.Account = nil })},
			[]string{"Senders are not checked", "nothing reaches Mailjet"}, []string{"Mailjet itself holds", "451"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts...)
			body := e.do(t, "GET", "/senders", nil).Body.String()
			checkBody(t, body, tc.want, tc.dontWant)
		})
	}
}

// TestFunnel: the delivery funnel page and API.
func TestFunnel(t *testing.T) {
	e := newEnv(t)
	var f struct {
		Days []struct {
			Day   time.Time      `json:"day"`
			Total map[string]int `json:"total"`
		} `json:"days"`
		Lanes map[string]map[string]int `json:"lanes"`
		Total map[string]int            `json:"total"`
	}
	w := e.do(t, "GET", "/api/funnel?days=2&tz=-300", nil)
	unmarshal(t, w.Body.Bytes(), &f)
	if len(f.Days) != 2 || f.Days[1].Day.Format(time.RFC3339) != "2026-11-24T00:00:00-05:00" {
		t.Fatalf("days %+v", f.Days)
	}
	if f.Total["received"] != 5 || f.Total["accepted"] != 2 || f.Total["bounced"] != 1 || f.Total["delivered"] != 1 ||
		f.Lanes["bulk"]["bounced"] != 1 || f.Lanes["transactional"]["sandboxed"] != 1 {
		t.Errorf("funnel %+v", f)
	}
	for _, q := range []string{"days=0", "days=500", "days=x", "tz=abc"} {
		if w := e.do(t, "GET", "/api/funnel?"+q, nil); w.Code != http.StatusBadRequest {
			t.Errorf("%s: %d", q, w.Code)
		}
	}
	page := e.do(t, "GET", "/funnel?days=7&lane=bulk&tz=60", nil).Body.String()
	for _, want := range []string{"(UTC&#43;01:00)", `<td class="num rate">100.0 %</td>`, `aria-current="true">bulk`, "event webhook is not configured"} {
		if !strings.Contains(page, want) {
			t.Errorf("funnel page lacks %q", want)
		}
	}
	e = newEnv(t, withWebhook(t))
	if page := e.do(t, "GET", "/funnel", nil).Body.String(); strings.Contains(page, "not configured") || !strings.Contains(page, "(UTC)") {
		t.Error("with the webhook configured, or without tz")
	}
	if !slices.Contains(pageNames, "funnel") {
		t.Error("no funnel page")
	}
}
