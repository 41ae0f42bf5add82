package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

func testListFilters(t *testing.T, h Harness) {
	s := open(t, h, Options{})
	sample := NewSample(T0)
	Feed(t, s, sample.Events, sample.Mailjet...)
	ids := sample.IDs
	refused := func() string {
		r := IDs(t, s, store.Filter{State: "refused"})
		if len(r) != 1 {
			t.Fatalf("refused: %v", r)
		}
		return r[0]
	}()
	all := []string{refused, ids["sandbox"], ids["failed"], ids["retry"], ids["newsletter"], ids["invoice"]}
	tests := []struct {
		name string
		f    store.Filter
		want []string
	}{
		{"all, newest first", store.Filter{}, all},
		{"state", store.Filter{State: "failed"}, []string{ids["failed"]}},
		{"Mailjet state", store.Filter{State: "delivered"}, []string{ids["invoice"]}},
		{"bounced", store.Filter{State: "bounced"}, []string{ids["newsletter"]}},
		{"several states", store.Filter{State: "failed,bounced,refused"}, []string{refused, ids["failed"], ids["newsletter"]}},
		{"several states, spaced", store.Filter{State: " failed , bounced"}, []string{ids["failed"], ids["newsletter"]}},
		{"class", store.Filter{Class: "bulk"}, []string{ids["newsletter"]}},
		{"to address", store.Filter{To: "Mr.X@Client.Example"}, []string{ids["invoice"]}},
		{"to <address>", store.Filter{To: "<mr.x@client.example>"}, []string{ids["invoice"]}},
		{"to domain", store.Filter{To: "client.example"}, []string{refused, ids["failed"], ids["invoice"]}},
		{"to @domain", store.Filter{To: "@client.example"}, []string{refused, ids["failed"], ids["invoice"]}},
		{"from address", store.Filter{From: "sales@acme.example"}, []string{ids["failed"], ids["retry"]}},
		{"from and to", store.Filter{From: "sales@acme.example", To: "client.example"}, []string{ids["failed"]}},
		{"to and state", store.Filter{To: "client.example", State: "refused"}, []string{refused}},
		{"q subject word", store.Filter{Q: "invoice"}, []string{ids["invoice"]}},
		{"q prefix, any case", store.Filter{Q: "QUOTAT"}, []string{ids["retry"]}},
		{"q two words", store.Filter{Q: "order SO042"}, []string{ids["failed"]}},
		{"q address", store.Filter{Q: "mr.x@client.example"}, []string{ids["invoice"]}},
		{"q login", store.Filter{Q: "odoo-bulk"}, []string{ids["newsletter"]}},
		{"q queue id", store.Filter{Q: ids["retry"]}, []string{ids["retry"]}},
		{"q Mailjet id", store.Filter{Q: "288230376151711744"}, []string{ids["invoice"]}},
		{"q Mailjet UUID", store.Filter{Q: "1AB23CD4-0000-4000-8000-000000000001"}, []string{ids["invoice"]}},
		{"q Message-Id", store.Filter{Q: "<" + ids["sandbox"] + "@odoo.example>"}, []string{ids["sandbox"]}},
		{"q with FTS syntax is literal", store.Filter{Q: `"invoice OR (x* NEAR`}, nil},
		{"q and state", store.Filter{Q: "hr@acme", State: "sandboxed"}, []string{ids["sandbox"]}},
		{"q address prefix", store.Filter{Q: "mr.x"}, []string{ids["invoice"]}},
		{"q domain", store.Filter{Q: "client.example"}, []string{refused, ids["failed"], ids["invoice"]}},
		{"q @domain, sender side", store.Filter{Q: "@ACME.example", State: "failed"}, []string{ids["failed"]}},
		{"since", store.Filter{Since: T0.Add(25 * time.Second)}, []string{refused, ids["sandbox"], ids["failed"]}},
		{"until", store.Filter{Until: T0.Add(15 * time.Second)}, []string{ids["newsletter"], ids["invoice"]}},
		{"since and until", store.Filter{Since: T0.Add(15 * time.Second), Until: T0.Add(35 * time.Second)}, []string{ids["failed"], ids["retry"]}},
		{"limit", store.Filter{Limit: 2}, all[:2]},
		{"nothing", store.Filter{To: "nobody@nowhere.example"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := IDs(t, s, tc.f); !slices.Equal(got, tc.want) {
				t.Errorf("got %v\nwant %v", got, tc.want)
			}
		})
	}
	t.Run("summary fields", func(t *testing.T) {
		p, _ := s.List(context.Background(), store.Filter{Q: ids["invoice"]})
		m := p.Messages[0]
		if m.State != "delivered" || m.Class != "transactional" || m.From != "invoices@acme.example" ||
			!slices.Equal(m.To, []string{"mr.x@client.example"}) || m.Subject != "Invoice INV/2026/0042" ||
			m.Transport != "api" || !slices.Equal(m.MailjetIDs, []string{"288230376151711744"}) || m.User != "odoo" ||
			m.Client == "" || m.Size == 0 || m.MessageID == "" || !m.ReceivedAt.Equal(T0) || m.Attempts != 1 {
			t.Errorf("summary = %+v", m)
		}
	})
}

// testPaging walks all pages of a filter: every message once, newest
// first; a cursor the store did not make is a bad filter.
func testPaging(t *testing.T, h Harness) {
	s := open(t, h, Options{})
	var evs []trafficlog.Event
	for i := range 237 {
		at := T0.Add(time.Duration(i) * time.Second)
		to := fmt.Sprintf("rcpt%d@%s", i, []string{"a.example", "b.example"}[i%2])
		evs = append(evs, NewFlow(at, QueueID(at, uint32(i)), "s@acme.example", []string{to}, "page test").Received(nil).Events()...)
	}
	Feed(t, s, evs)
	for _, tc := range []struct {
		f    store.Filter
		want int
	}{{store.Filter{Limit: 50}, 237}, {store.Filter{Limit: 20, To: "b.example"}, 118}, {store.Filter{Limit: 7, Q: "page"}, 237},
		{store.Filter{Limit: 237}, 237}, {store.Filter{}, 237}} {
		var got []store.Summary
		seen := map[string]bool{}
		f := tc.f
		for pages := 0; ; pages++ {
			if pages > 100 {
				t.Fatal("paging does not end")
			}
			p, err := s.List(context.Background(), f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range p.Messages {
				if seen[m.ID] {
					t.Fatalf("%+v: %s on two pages", tc.f, m.ID)
				}
				seen[m.ID] = true
			}
			got = append(got, p.Messages...)
			if p.Next == "" {
				break
			}
			f.Cursor = p.Next
		}
		if len(got) != tc.want {
			t.Errorf("%+v: %d messages over all pages, want %d", tc.f, len(got), tc.want)
		}
		for i := 1; i < len(got); i++ {
			if !got[i].ReceivedAt.Before(got[i-1].ReceivedAt) {
				t.Fatalf("%+v: not newest first at %d: %v then %v", tc.f, i, got[i-1].ReceivedAt, got[i].ReceivedAt)
			}
		}
	}
	if _, err := s.List(context.Background(), store.Filter{Cursor: "x"}); !errors.Is(err, store.ErrBadFilter) {
		t.Errorf("a bad cursor: %v, want ErrBadFilter", err)
	}
}

func testDetail(t *testing.T, h Harness) {
	s := open(t, h, Options{KeepBodies: time.Hour})
	sample := NewSample(T0)
	Feed(t, s, sample.Events, sample.Mailjet...)
	m := get(t, s, sample.IDs["invoice"])
	if len(m.AttemptList) != 1 || m.AttemptList[0].Transport != "api" || m.AttemptList[0].DurationMS != 180 ||
		m.AttemptList[0].Reply != "250 OK" || m.AttemptList[0].Attempt != 1 || len(m.AttemptList[0].Rcpts) != 1 {
		t.Errorf("attempts = %+v", m.AttemptList)
	}
	if len(m.Events) != 1 || m.Events[0].Event != "sent" || m.Events[0].MessageID != 288230376151711744 {
		t.Errorf("events = %+v", m.Events)
	}
	if want := []string{"received", "policy", "attempt", "delivered", "mailjet:sent"}; !slices.Equal(Kinds(m), want) {
		t.Errorf("timeline = %v, want %v", Kinds(m), want)
	}
	for i, st := range m.Timeline {
		if st.Text == "" || (st.Source != "relay" && st.Source != "mailjet") || st.Bad {
			t.Errorf("timeline step %d = %+v", i, st)
		}
	}
	if len(m.Recipients) != 1 || m.Recipients[0].MailjetID != "288230376151711744" ||
		m.Recipients[0].MailjetUUID != "1ab23cd4-0000-4000-8000-000000000001" || m.Recipients[0].State != "delivered" {
		t.Errorf("recipients = %+v", m.Recipients)
	}
	if !m.HasRaw || m.LatencyMS <= 0 || m.FinalAt == nil || !m.TLS || m.ClassRule != "default" || m.Helo != "odoo.example" {
		t.Errorf("detail = %+v", m)
	}
	if m := get(t, s, sample.IDs["failed"]); m.FinalAt == nil || !slices.ContainsFunc(m.Timeline, func(st store.Step) bool { return st.Bad }) {
		t.Errorf("failed message: final %v, timeline %+v", m.FinalAt, m.Timeline)
	}
	if m := get(t, s, sample.IDs["retry"]); m.FinalAt != nil {
		t.Errorf("a deferred message has a final time %v", m.FinalAt)
	}
}

func testNotFound(t *testing.T, h Harness) {
	s := open(t, h, Options{KeepBodies: time.Hour})
	Feed(t, s, NewSample(T0).Events)
	ctx := context.Background()
	for _, id := range []string{"nope", QueueID(T0, 999), ""} {
		if _, err := s.Get(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", id, err)
		}
		if _, _, err := s.Raw(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Raw(%q) = %v, want ErrNotFound", id, err)
		}
	}
}

func testStats(t *testing.T, h Harness) {
	s := open(t, h, Options{})
	sample := NewSample(T0)
	Feed(t, s, sample.Events, sample.Mailjet...)
	st, err := s.Stats(context.Background(), T0.Add(-time.Hour), T0.Add(time.Hour), 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Buckets) != 12 {
		t.Errorf("%d buckets, want 12", len(st.Buckets))
	}
	want := map[string]int{"received": 5, "refused": 1, "delivered": 2, "sandboxed": 1, "failed": 1, "deferred": 1,
		"attempt": 5, "final": 4, "mj_sent": 1, "mj_bounce": 1}
	for k, v := range want {
		if st.Totals[k] != v {
			t.Errorf("totals[%s] = %d, want %d (%v)", k, st.Totals[k], v, st.Totals)
		}
	}
	if st.ReceivedByClass["bulk"] != 1 || st.ReceivedByClass["transactional"] != 4 {
		t.Errorf("received by class = %v", st.ReceivedByClass)
	}
	reasons := map[string]int{}
	for _, f := range st.Failures {
		reasons[f.Kind+" "+f.Reason] = f.N
	}
	for _, r := range []string{"failed 550 5.1.1", "refused data: sender_not_found", "mj_bounce recipient: user unknown"} {
		if reasons[r] != 1 {
			t.Errorf("failure %q missing: %v", r, reasons)
		}
	}
	if st.LatencyAvgMS <= 0 || st.LatencyMaxMS < st.LatencyAvgMS {
		t.Errorf("latency avg %v, max %v", st.LatencyAvgMS, st.LatencyMaxMS)
	}
	// Every count lands in the bucket of its minute: the sample's first
	// minute is the bucket starting at T0.
	var inT0 *store.Bucket
	sum := 0
	for i := range st.Buckets {
		b := &st.Buckets[i]
		sum += b.Counts["received"]
		if b.Time.Equal(T0) {
			inT0 = b
		}
	}
	if inT0 == nil || inT0.Received["transactional"] != 4 || inT0.Received["bulk"] != 1 || inT0.LatencyAvgMS <= 0 || sum != 5 {
		t.Errorf("bucket at T0 = %+v (received over all buckets %d)", inT0, sum)
	}
}

// testStatsBuckets: the window is cut in steps of at least a minute, at
// most 1440 of them.
func testStatsBuckets(t *testing.T, h Harness) {
	s := open(t, h, Options{})
	tests := []struct {
		name         string
		since, until time.Time
		step         time.Duration
		buckets      int
		stepSeconds  int
	}{
		{"hours in 10 minutes", T0, T0.Add(2 * time.Hour), 10 * time.Minute, 12, 600},
		{"under a minute is a minute", T0, T0.Add(time.Hour), 30 * time.Second, 60, 60},
		{"at most 1440", T0, T0.Add(30 * 24 * time.Hour), time.Minute, 1440, 60},
		{"empty window: one step", T0, T0, 5 * time.Minute, 1, 300},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := s.Stats(context.Background(), tc.since, tc.until, tc.step)
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Buckets) != tc.buckets || st.StepSeconds != tc.stepSeconds {
				t.Fatalf("%d buckets of %d s, want %d of %d s", len(st.Buckets), st.StepSeconds, tc.buckets, tc.stepSeconds)
			}
			for i := 1; i < len(st.Buckets); i++ {
				if d := st.Buckets[i].Time.Sub(st.Buckets[i-1].Time); d != time.Duration(tc.stepSeconds)*time.Second {
					t.Fatalf("buckets %d and %d are %v apart", i-1, i, d)
				}
			}
			if st.Totals == nil || st.ReceivedByClass == nil || st.Failures == nil {
				t.Errorf("empty stats with nil maps: %+v", st)
			}
		})
	}
}

// testHealth: a store that keeps up loses nothing and has nothing
// waiting once flushed.
func testHealth(t *testing.T, h Harness) {
	s := open(t, h, Options{KeepBodies: time.Hour})
	sample := NewSample(T0)
	Feed(t, s, sample.Events, sample.Mailjet...)
	if hl := s.Health(); hl != (store.Health{}) {
		t.Errorf("Health = %+v, want zero", hl)
	}
}

// testClosed: after Close, Record drops (and does not panic) and
// RecordMailjet says ErrClosed.
func testClosed(t *testing.T, h Harness) {
	s := open(t, h, Options{})
	sample := NewSample(T0)
	Feed(t, s, sample.Events)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.Record(sample.Events[0])
	if err := s.RecordMailjet(context.Background(), sample.Mailjet); !errors.Is(err, store.ErrClosed) {
		t.Errorf("RecordMailjet after Close: %v, want ErrClosed", err)
	}
}

// clock is a settable clock for the stores under test.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.set(t)
	return c
}

func (c *clock) now() time.Time  { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) set(t time.Time) { c.ns.Store(t.UnixNano()) }
