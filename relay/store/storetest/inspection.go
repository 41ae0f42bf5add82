package storetest

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// What the traffic list needs to say why, at a glance: each message in a
// problem state has its reason label, the list filters by it, and the
// labels are those the failure statistics count.
func testReasons(t *testing.T, h Harness) {
	s := open(t, h, Options{})
	sample := NewSample(T0)
	ids := sample.IDs
	at := T0.Add(2 * time.Minute)
	blocked := NewFlow(at, QueueID(at, 11), "s@acme.example", []string{"b@x.example"}, "Blocked").Received(nil).
		Attempt("smtp", "250 OK", accepted("b@x.example")).Delivered()
	expired := NewFlow(at.Add(time.Second), QueueID(at.Add(time.Second), 12), "s@acme.example", []string{"e@x.example"}, "Expired").
		Received(nil).Attempt("smtp", "421 4.7.0 later").Deferred("421 4.7.0 later").
		Failed("421 4.7.0 later", "gave up after 72h (queue.max_lifetime)")
	recovered := NewFlow(at.Add(2*time.Second), QueueID(at.Add(2*time.Second), 13), "s@acme.example", []string{"r@x.example"}, "Recovered").
		Received(nil).Attempt("smtp", "451 4.3.0 busy").Deferred("451 4.3.0 busy").Attempt("smtp", "250 OK", accepted("r@x.example")).Delivered()
	evs := append(append(append(sample.Events, blocked.Events()...), expired.Events()...), recovered.Events()...)
	Feed(t, s, evs, append(sample.Mailjet, Mailjet(at.Add(time.Minute), "blocked", blocked.base.ID, "b@x.example", 0))...)
	refused := IDs(t, s, store.Filter{State: "refused"})[0]

	want := map[string]string{ids["invoice"]: "", ids["sandbox"]: "", ids["newsletter"]: "recipient: user unknown",
		ids["retry"]: "421 4.7.0", ids["failed"]: "550 5.1.1", refused: "data: sender_not_found",
		blocked.base.ID: "mailjet: preblocked", expired.base.ID: "expired (queue.max_lifetime)", recovered.base.ID: ""}
	p, err := s.List(context.Background(), store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, m := range p.Messages {
		got[m.ID] = m.Why
		if m.ID == ids["newsletter"] && !strings.Contains(m.Reply, "user unknown") {
			t.Errorf("a bounced message's reply is %q, not Mailjet's", m.Reply)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("reasons %v\nwant %v", got, want)
	}
	for id, why := range want {
		if why == "" {
			continue
		}
		if l := IDs(t, s, store.Filter{Reason: why}); !slices.Equal(l, []string{id}) {
			t.Errorf("Reason %q: %v, want %s", why, l, id)
		}
	}
	if l := IDs(t, s, store.Filter{Reason: "550 5.1.1", State: "deferred"}); len(l) != 0 {
		t.Errorf("reason and another state: %v", l)
	}
	st, err := s.Stats(context.Background(), T0, T0.Add(time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range st.Failures {
		if len(IDs(t, s, store.Filter{Reason: f.Reason})) == 0 {
			t.Errorf("failure %s %q: no message has this reason", f.Kind, f.Reason)
		}
	}
	var deferrals []string
	for _, d := range st.Deferrals {
		deferrals = append(deferrals, d.Reason)
	}
	slices.Sort(deferrals)
	if want := []string{"421 4.7.0", "421 4.7.0", "451 4.3.0"}; !slices.Equal(slices.Compact(deferrals), slices.Compact(want)) {
		t.Errorf("deferrals %+v", st.Deferrals)
	}
}

// testUpstreamIDs: an upstream's "queued as" id finds its message, whatever
// it looks like, also when the message was stored before its attempt.
func testUpstreamIDs(t *testing.T, h Harness) {
	s := open(t, h, Options{})
	upstream := map[string]string{
		"postfix-like":   "4XqZ9k1aB2",
		"another relay":  QueueID(T0.Add(-time.Hour), 4242), // looks like one of ours
		"digits only":    "1234567890",
		"a Send API one": "5ef0c1d2-aaaa-4bbb-8ccc-0123456789ab",
	}
	var received, evs []trafficlog.Event
	byID := map[string]string{}
	n := uint32(0)
	for name, up := range upstream {
		n++
		at := T0.Add(time.Duration(n) * time.Second)
		f := NewFlow(at, QueueID(at, n), "s@acme.example", []string{"r@x.example"}, name).Received(nil).
			Upstream(up).Attempt("smtp", "250 OK queued as "+up, accepted("r@x.example")).Delivered()
		received, evs = append(received, f.Events()[0]), append(evs, f.Events()[1:]...)
		byID[up] = f.base.ID
	}
	other := NewFlow(T0.Add(time.Minute), QueueID(T0.Add(time.Minute), 99), "s@acme.example", []string{"r@x.example"}, "Order 4XqZ").
		Received(nil)
	Feed(t, s, append(received, other.Events()...))
	Feed(t, s, evs)
	for up, id := range byID {
		for _, q := range []string{up, strings.ToUpper(up), strings.ToLower(up)} {
			if got := IDs(t, s, store.Filter{Q: q}); !slices.Equal(got, []string{id}) {
				t.Errorf("q=%s: %v, want %s", q, got, id)
			}
		}
		if m := get(t, s, id); !slices.Equal(m.UpstreamIDs, []string{up}) {
			t.Errorf("%s: upstream ids %v", id, m.UpstreamIDs)
		}
		if got := IDs(t, s, store.Filter{Q: up, State: "failed"}); len(got) != 0 {
			t.Errorf("q=%s with another state: %v", up, got)
		}
	}
	if got := IDs(t, s, store.Filter{Q: "4XqZ"}); !slices.Equal(got, []string{other.base.ID}) {
		t.Errorf("a subject word is still searched: %v", got)
	}
}

// testAttachments: a message received with its body has its attachments
// counted.
func testAttachments(t *testing.T, h Harness) {
	s := open(t, h, Options{KeepBodies: time.Hour})
	rich := NewRich(RichOptions{From: "invoices@acme.example", To: "mr.x@client.example", Remote: "https://t.example/p.png", Beacon: "https://t.example/b"})
	a := NewFlow(T0, QueueID(T0, 1), "invoices@acme.example", []string{"mr.x@client.example"}, rich.Subject).Received(rich.Raw)
	b := NewFlow(T0.Add(time.Second), QueueID(T0.Add(time.Second), 2), "s@acme.example", []string{"r@x.example"}, "Plain").
		Received([]byte("Subject: Plain\r\n\r\nHello\r\n"))
	Feed(t, s, append(a.Events(), b.Events()...))
	p, err := s.List(context.Background(), store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, m := range p.Messages {
		got[m.Subject] = m.Attachments
	}
	if want := map[string]int{rich.Subject: 1, "Plain": 0}; !reflect.DeepEqual(got, want) {
		t.Errorf("attachments %v, want %v", got, want)
	}
	if m := get(t, s, a.base.ID); m.Attachments != 1 {
		t.Errorf("detail: %d attachments", m.Attachments)
	}
}

// testFunnel: recipients received, accepted by Mailjet and what Mailjet
// said of them, per day (in the location asked) and lane.
func testFunnel(t *testing.T, h Harness) {
	s := open(t, h, Options{Now: func() time.Time { return T0.Add(24 * time.Hour) }})
	sample := NewSample(T0)
	late := T0.Add(13*time.Hour + 30*time.Minute) // 22:30 UTC: the next day at UTC+2
	to := []string{"a@x.example", "b@x.example", "c@x.example"}
	three := NewFlow(late, QueueID(late, 9), "news@acme.example", to, "Three").Class("bulk", "precedence").Received(nil).
		Attempt("smtp", "250 OK", accepted(to[0]), accepted(to[1]), accepted(to[2])).Delivered()
	mj := append(sample.Mailjet, Mailjet(late.Add(time.Minute), "sent", three.base.ID, to[0], 0),
		Mailjet(late.Add(time.Minute), "spam", three.base.ID, to[1], 0), Mailjet(late.Add(time.Minute), "unsub", three.base.ID, to[2], 0))
	Feed(t, s, append(sample.Events, three.Events()...), mj...)
	ctx := context.Background()

	f, err := s.Funnel(ctx, T0, late, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Days) != 1 || !f.Days[0].Day.Equal(time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("days %+v", f.Days)
	}
	wantTr := store.FunnelCounts{Received: 4, Accepted: 1, Failed: 1, Sandboxed: 1, Delivered: 1}
	wantBulk := store.FunnelCounts{Received: 4, Accepted: 4, Bounced: 1, Delivered: 1, Spam: 1, Unsub: 1}
	if f.Lanes["transactional"] != wantTr || f.Lanes["bulk"] != wantBulk {
		t.Errorf("lanes %+v\nwant transactional %+v, bulk %+v", f.Lanes, wantTr, wantBulk)
	}
	var total store.FunnelCounts
	total.Add(wantTr)
	total.Add(wantBulk)
	if f.Total != total || f.Days[0].Total != total {
		t.Errorf("total %+v, day %+v, want %+v", f.Total, f.Days[0].Total, total)
	}
	if r := f.Lanes["bulk"].Rate(f.Lanes["bulk"].Bounced); r != 0.25 {
		t.Errorf("bulk bounce rate %v, want 0.25", r)
	}

	east := time.FixedZone("UTC+2", 2*3600)
	f, err = s.Funnel(ctx, T0, late, east)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Days) != 2 || f.Days[1].Day.Day() != 25 || f.Days[1].Total.Received != 3 || f.Days[1].Total.Spam != 1 ||
		f.Days[0].Total.Received != 5 || f.Total != total {
		t.Errorf("at UTC+2: %d days %+v", len(f.Days), f.Days)
	}
	if f, err := s.Funnel(ctx, T0.Add(48*time.Hour), T0.Add(72*time.Hour), time.UTC); err != nil || f.Total != (store.FunnelCounts{}) || len(f.Days) != 2 {
		t.Errorf("an empty window: %+v, %v", f, err)
	}
}

// testSandboxNotMailjet: sandboxed mail never reached Mailjet: it has its
// own counters and no latency to Mailjet's acceptance.
func testSandboxNotMailjet(t *testing.T, h Harness) {
	s := open(t, h, Options{})
	ok := trafficlog.RcptResult{Rcpt: "r@x.example", Status: "delivered", Reply: mailjet.ParseReply("250 sandbox")}
	f := NewFlow(T0, QueueID(T0, 1), "s@acme.example", []string{"r@x.example"}, "Sandboxed").Received(nil).
		Attempt("sandbox", "250 sandbox", ok).Sandboxed()
	Feed(t, s, f.Events())
	st, err := s.Stats(context.Background(), T0, T0.Add(time.Hour), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if st.Totals["sandboxed"] != 1 || st.Totals["delivered"] != 0 || st.LatencyAvgMS != 0 || st.LatencyMaxMS != 0 {
		t.Errorf("totals %v, latency avg %v max %v", st.Totals, st.LatencyAvgMS, st.LatencyMaxMS)
	}
	for _, b := range st.Buckets {
		if b.LatencyAvgMS != 0 || b.LatencyMaxMS != 0 {
			t.Errorf("bucket %v has a latency", b.Time)
		}
	}
	if m := get(t, s, f.base.ID); m.LatencyMS != 0 {
		t.Errorf("latency %v on a sandboxed message", m.LatencyMS)
	}
}

// testDeferredStep: the timeline says when a deferred message is tried
// again as a time, not in its text.
func testDeferredStep(t *testing.T, h Harness) {
	s := open(t, h, Options{})
	f := NewFlow(T0, QueueID(T0, 1), "s@acme.example", []string{"r@x.example"}, "Later").Received(nil).
		Attempt("smtp", "451 4.3.0 busy").Deferred("451 4.3.0 busy")
	Feed(t, s, f.Events())
	m := get(t, s, f.base.ID)
	i := slices.IndexFunc(m.Timeline, func(st store.Step) bool { return st.Kind == string(trafficlog.Deferred) })
	if i < 0 || !m.Timeline[i].Next.Equal(f.Events()[len(f.Events())-1].Next) || strings.Contains(m.Timeline[i].Text, "UTC") {
		t.Errorf("timeline %+v", m.Timeline)
	}
}

// accepted is a recipient's result in an attempt Mailjet accepted.
func accepted(rcpt string) trafficlog.RcptResult {
	return trafficlog.RcptResult{Rcpt: rcpt, Status: "delivered", Reply: mailjet.ParseReply("250 OK")}
}
