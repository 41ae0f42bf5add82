package web

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func decode[T any](t testing.TB, body []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("bad JSON %q: %v", body, err)
	}
	return v
}

type apiPage struct {
	Messages []map[string]any `json:"messages"`
	Next     string           `json:"next"`
}

func TestAPIList(t *testing.T) {
	e := newEnv(t)
	ids := e.smp.IDs
	tests := []struct {
		query string
		want  []string
	}{
		{"state=failed", []string{ids["failed"]}},
		{"state=delivered", []string{ids["invoice"]}},
		{"state=bounced", []string{ids["newsletter"]}},
		{"state=deferred", []string{ids["retry"]}},
		{"state=sandboxed", []string{ids["sandbox"]}},
		{"class=bulk", []string{ids["newsletter"]}},
		{"to=mr.x@client.example", []string{ids["invoice"]}},
		{"from=sales@acme.example", []string{ids["failed"], ids["retry"]}},
		{"q=" + url.QueryEscape("Invoice INV/2026/0042"), []string{ids["invoice"]}},
		{"q=288230376151711744", []string{ids["invoice"]}},
		{"since=2026-11-24T09:00:25Z&until=2026-11-24T09:00:45Z&state=failed,sandboxed", []string{ids["sandbox"], ids["failed"]}},
		{"since=2026-11-24T10:00:25&tz=60&state=failed,sandboxed", []string{ids["sandbox"], ids["failed"]}},
		{"since=10m", nil}, // the clock says 10:00; all the sample is from 09:00
		{"to=nobody@nowhere.example", nil},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			w := e.do(t, "GET", "/api/messages?"+tc.query, nil)
			if w.Code != http.StatusOK {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			p := decode[apiPage](t, w.Body.Bytes())
			var got []string
			for _, m := range p.Messages {
				got = append(got, m["id"].(string))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("fields and paging", func(t *testing.T) {
		w := e.do(t, "GET", "/api/messages?limit=2", nil)
		p := decode[apiPage](t, w.Body.Bytes())
		if len(p.Messages) != 2 || p.Next == "" {
			t.Fatalf("page = %s", w.Body)
		}
		for _, k := range []string{"id", "received_at", "state", "class", "from", "to", "subject", "message_id", "size",
			"user", "client", "transport", "mailjet_ids"} {
			if _, ok := p.Messages[0][k]; !ok {
				t.Errorf("field %q missing", k)
			}
		}
		seen := map[string]bool{}
		for cursor := ""; ; {
			w := e.do(t, "GET", "/api/messages?limit=2&cursor="+cursor, nil)
			p := decode[apiPage](t, w.Body.Bytes())
			for _, m := range p.Messages {
				seen[m["id"].(string)] = true
			}
			if cursor = p.Next; cursor == "" {
				break
			}
		}
		if len(seen) != 6 {
			t.Errorf("paging saw %d messages, want 6", len(seen))
		}
	})
}

func TestAPIBadRequests(t *testing.T) {
	e := newEnv(t)
	for _, q := range []string{"state=bogus", "limit=0", "limit=5000", "limit=x", "since=yesterday", "until=2026-13-45",
		"cursor=abc", "tz=9999"} {
		if w := e.do(t, "GET", "/api/messages?"+q, nil); w.Code != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", q, w.Code, w.Body)
		}
	}
	if w := e.do(t, "GET", "/api/stats?window=2y", nil); w.Code != http.StatusBadRequest {
		t.Errorf("stats window=2y: %d", w.Code)
	}
}

func TestAPIMessage(t *testing.T) {
	e := newEnv(t)
	w := e.do(t, "GET", "/api/messages/"+e.smp.IDs["invoice"], nil)
	if w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var m struct {
		ID       string `json:"id"`
		State    string `json:"state"`
		Attempts []struct {
			Time       string  `json:"time"`
			Transport  string  `json:"transport"`
			Reply      string  `json:"reply"`
			DurationMS float64 `json:"duration_ms"`
		} `json:"attempts"`
		Events []struct {
			Event     string `json:"event"`
			MailjetID string `json:"mailjet_id"`
			SMTPReply string `json:"smtp_reply"`
		} `json:"events"`
		Timeline []struct {
			Kind string `json:"kind"`
			Text string `json:"text"`
		} `json:"timeline"`
		HasRaw bool `json:"has_raw"`
	}
	unmarshal(t, w.Body.Bytes(), &m)
	if m.State != "delivered" || len(m.Attempts) != 1 || m.Attempts[0].Transport != "api" || m.Attempts[0].Reply != "250 OK" ||
		m.Attempts[0].DurationMS == 0 || m.Attempts[0].Time == "" {
		t.Errorf("attempts = %+v", m.Attempts)
	}
	if len(m.Events) != 1 || m.Events[0].Event != "sent" || m.Events[0].MailjetID != "288230376151711744" || m.Events[0].SMTPReply == "" {
		t.Errorf("events = %+v (the Mailjet id must be a string: it exceeds JavaScript's integers)", m.Events)
	}
	var kinds []string
	for _, s := range m.Timeline {
		kinds = append(kinds, s.Kind)
	}
	if want := []string{"received", "policy", "attempt", "delivered", "mailjet:sent"}; !slices.Equal(kinds, want) {
		t.Errorf("timeline %v, want %v", kinds, want)
	}
	if !m.HasRaw {
		t.Error("has_raw = false")
	}
	if w := e.do(t, "GET", "/api/messages/nope", nil); w.Code != http.StatusNotFound {
		t.Errorf("unknown id: %d", w.Code)
	}
}

func unmarshal(t testing.TB, body []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("bad JSON %q: %v", body, err)
	}
}

func TestAPIRaw(t *testing.T) {
	e := newEnv(t)
	w := e.do(t, "GET", "/api/messages/"+e.smp.IDs["invoice"]+"/raw", nil)
	if w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if cd := w.Header().Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment;") || !strings.Contains(cd, ".eml") {
		t.Errorf("Content-Disposition = %q, want an attachment", cd)
	}
	if ct := w.Header().Get("Content-Type"); ct != "message/rfc822" {
		t.Errorf("Content-Type = %q", ct)
	}
	if !strings.Contains(w.Body.String(), "Hello Mr. X") {
		t.Errorf("body = %q", w.Body)
	}
	// The newsletter was received without a body.
	if w := e.do(t, "GET", "/api/messages/"+e.smp.IDs["newsletter"]+"/raw", nil); w.Code != http.StatusNotFound {
		t.Errorf("no body: %d", w.Code)
	}
}

func TestAPIQueueActions(t *testing.T) {
	e := newEnv(t)
	retry := e.smp.IDs["retry"]
	tests := []struct {
		name, method, path string
		inFlight           bool
		want               int
	}{
		{"retry", "POST", "/api/messages/" + retry + "/retry", false, 200},
		{"retry unknown", "POST", "/api/messages/" + e.smp.IDs["invoice"] + "/retry", false, 404},
		{"delete in flight", "DELETE", "/api/messages/" + retry, true, 409},
		{"delete", "DELETE", "/api/messages/" + retry, false, 200},
		{"delete again", "DELETE", "/api/messages/" + retry, false, 404},
		{"GET is not an action", "GET", "/api/messages/" + retry + "/retry", false, 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.queue.inFlight = ""
			if tc.inFlight {
				e.queue.inFlight = retry
			}
			if w := e.do(t, tc.method, tc.path, nil); w.Code != tc.want {
				t.Errorf("%d %s, want %d", w.Code, w.Body, tc.want)
			}
		})
	}
	if !slices.Equal(e.queue.retried, []string{retry}) || !slices.Equal(e.queue.deleted, []string{retry}) {
		t.Errorf("queue saw retried %v, deleted %v", e.queue.retried, e.queue.deleted)
	}
	t.Run("no queue", func(t *testing.T) {
		e := newEnv(t, withDeps(func(d *Deps) { d.Queue = nil }))
		if w := e.do(t, "POST", "/api/messages/x/retry", nil); w.Code != http.StatusServiceUnavailable {
			t.Errorf("%d", w.Code)
		}
	})
}

func TestAPIStats(t *testing.T) {
	e := newEnv(t)
	w := e.do(t, "GET", "/api/stats?window=24h", nil)
	if w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var st struct {
		Buckets    []map[string]any `json:"buckets"`
		Totals     map[string]int   `json:"totals"`
		Failures   []map[string]any `json:"failures"`
		QueueNow   map[string]int   `json:"queue_now"`
		QueueDepth map[string][]int `json:"queue_depth"`
	}
	unmarshal(t, w.Body.Bytes(), &st)
	if st.Totals["received"] != 5 || st.Totals["refused"] != 1 || st.Totals["mj_bounce"] != 1 {
		t.Errorf("totals = %v", st.Totals)
	}
	if len(st.Failures) != 3 || st.QueueNow["transactional"] != 1 {
		t.Errorf("failures = %v, queue now = %v", st.Failures, st.QueueNow)
	}
	d := st.QueueDepth["transactional"]
	if len(d) != len(st.Buckets) || d[len(d)-1] != 1 || d[0] != 0 {
		t.Errorf("queue depth = %v over %d buckets: want 0 before the traffic and 1 (the deferred message) now", d, len(st.Buckets))
	}
}
