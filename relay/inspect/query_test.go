package inspect_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/inspect"
	"github.com/mjrelay/mjrelay/relay/inspect/insptest"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

func TestListFilters(t *testing.T) {
	s := open(t, inspect.Options{})
	sample := insptest.NewSample(t0)
	feed(t, s, sample.Events, sample.Mailjet...)
	ids := sample.IDs
	refused := func() string {
		p, _ := s.List(context.Background(), inspect.Filter{State: "refused"})
		if len(p.Messages) != 1 {
			t.Fatalf("refused: %+v", p.Messages)
		}
		return p.Messages[0].ID
	}()
	all := []string{refused, ids["sandbox"], ids["failed"], ids["retry"], ids["newsletter"], ids["invoice"]}
	tests := []struct {
		name string
		f    inspect.Filter
		want []string
	}{
		{"all, newest first", inspect.Filter{}, all},
		{"state", inspect.Filter{State: "failed"}, []string{ids["failed"]}},
		{"Mailjet state", inspect.Filter{State: "delivered"}, []string{ids["invoice"]}},
		{"bounced", inspect.Filter{State: "bounced"}, []string{ids["newsletter"]}},
		{"several states", inspect.Filter{State: "failed,bounced,refused"}, []string{refused, ids["failed"], ids["newsletter"]}},
		{"class", inspect.Filter{Class: "bulk"}, []string{ids["newsletter"]}},
		{"to address", inspect.Filter{To: "Mr.X@Client.Example"}, []string{ids["invoice"]}},
		{"to domain", inspect.Filter{To: "client.example"}, []string{refused, ids["failed"], ids["invoice"]}},
		{"to @domain", inspect.Filter{To: "@client.example"}, []string{refused, ids["failed"], ids["invoice"]}},
		{"from address", inspect.Filter{From: "sales@acme.example"}, []string{ids["failed"], ids["retry"]}},
		{"from and to", inspect.Filter{From: "sales@acme.example", To: "client.example"}, []string{ids["failed"]}},
		{"to and state", inspect.Filter{To: "client.example", State: "refused"}, []string{refused}},
		{"q subject word", inspect.Filter{Q: "invoice"}, []string{ids["invoice"]}},
		{"q prefix, any case", inspect.Filter{Q: "QUOTAT"}, []string{ids["retry"]}},
		{"q two words", inspect.Filter{Q: "order SO042"}, []string{ids["failed"]}},
		{"q address", inspect.Filter{Q: "mr.x@client.example"}, []string{ids["invoice"]}},
		{"q login", inspect.Filter{Q: "odoo-bulk"}, []string{ids["newsletter"]}},
		{"q queue id", inspect.Filter{Q: ids["retry"]}, []string{ids["retry"]}},
		{"q Mailjet id", inspect.Filter{Q: "288230376151711744"}, []string{ids["invoice"]}},
		{"q Mailjet UUID", inspect.Filter{Q: "1AB23CD4-0000-4000-8000-000000000001"}, []string{ids["invoice"]}},
		{"q Message-Id", inspect.Filter{Q: "<" + ids["sandbox"] + "@odoo.example>"}, []string{ids["sandbox"]}},
		{"q with FTS syntax is literal", inspect.Filter{Q: `"invoice OR (x* NEAR`}, nil},
		{"q and state", inspect.Filter{Q: "hr@acme", State: "sandboxed"}, []string{ids["sandbox"]}},
		{"q address prefix", inspect.Filter{Q: "mr.x"}, []string{ids["invoice"]}},
		{"q domain", inspect.Filter{Q: "client.example"}, []string{refused, ids["failed"], ids["invoice"]}},
		{"q @domain, sender side", inspect.Filter{Q: "@ACME.example", State: "failed"}, []string{ids["failed"]}},
		{"since", inspect.Filter{Since: t0.Add(25 * time.Second)}, []string{refused, ids["sandbox"], ids["failed"]}},
		{"until", inspect.Filter{Until: t0.Add(15 * time.Second)}, []string{ids["newsletter"], ids["invoice"]}},
		{"since and until", inspect.Filter{Since: t0.Add(15 * time.Second), Until: t0.Add(35 * time.Second)}, []string{ids["failed"], ids["retry"]}},
		{"nothing", inspect.Filter{To: "nobody@nowhere.example"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := s.List(context.Background(), tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range p.Messages {
				got = append(got, m.ID)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v\nwant %v", got, tc.want)
			}
		})
	}
	t.Run("summary fields", func(t *testing.T) {
		p, _ := s.List(context.Background(), inspect.Filter{Q: ids["invoice"]})
		m := p.Messages[0]
		if m.State != "delivered" || m.Class != "transactional" || m.From != "invoices@acme.example" ||
			!slices.Equal(m.To, []string{"mr.x@client.example"}) || m.Subject != "Invoice INV/2026/0042" ||
			m.Transport != "api" || !slices.Equal(m.MailjetIDs, []string{"288230376151711744"}) || m.User != "odoo" ||
			m.Client == "" || m.Size == 0 || m.MessageID == "" || !m.ReceivedAt.Equal(t0) {
			t.Errorf("summary = %+v", m)
		}
	})
}

// TestPaging walks all pages of a filter: every message once, newest first.
func TestPaging(t *testing.T) {
	s := open(t, inspect.Options{})
	var evs []trafficlog.Event
	for i := range 237 {
		at := t0.Add(time.Duration(i) * time.Second)
		to := fmt.Sprintf("rcpt%d@%s", i, []string{"a.example", "b.example"}[i%2])
		evs = append(evs, insptest.NewFlow(at, insptest.QueueID(at, uint32(i)), "s@acme.example", []string{to}, "page test").Received(nil).Events()...)
	}
	feed(t, s, evs)
	for _, tc := range []struct {
		f    inspect.Filter
		want int
	}{{inspect.Filter{Limit: 50}, 237}, {inspect.Filter{Limit: 20, To: "b.example"}, 118}, {inspect.Filter{Limit: 7, Q: "page"}, 237}} {
		var got []inspect.Summary
		f := tc.f
		for pages := 0; ; pages++ {
			if pages > 100 {
				t.Fatal("paging does not end")
			}
			p, err := s.List(context.Background(), f)
			if err != nil {
				t.Fatal(err)
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
	if _, err := s.List(context.Background(), inspect.Filter{Cursor: "x"}); err == nil {
		t.Error("a bad cursor was accepted")
	}
}

func TestDetail(t *testing.T) {
	s := open(t, inspect.Options{KeepBodies: time.Hour})
	sample := insptest.NewSample(t0)
	feed(t, s, sample.Events, sample.Mailjet...)
	m := get(t, s, sample.IDs["invoice"])
	if len(m.AttemptList) != 1 || m.AttemptList[0].Transport != "api" || m.AttemptList[0].DurationMS != 180 ||
		m.AttemptList[0].Reply != "250 OK" || m.AttemptList[0].Attempt != 1 {
		t.Errorf("attempts = %+v", m.AttemptList)
	}
	if len(m.Events) != 1 || m.Events[0].Event != "sent" || m.Events[0].MessageID != 288230376151711744 {
		t.Errorf("events = %+v", m.Events)
	}
	if want := []string{"received", "policy", "attempt", "delivered", "mailjet:sent"}; !slices.Equal(kinds(m), want) {
		t.Errorf("timeline = %v, want %v", kinds(m), want)
	}
	if len(m.Recipients) != 1 || m.Recipients[0].MailjetID != "288230376151711744" ||
		m.Recipients[0].MailjetUUID != "1ab23cd4-0000-4000-8000-000000000001" {
		t.Errorf("recipients = %+v", m.Recipients)
	}
	if !m.HasRaw || m.LatencyMS <= 0 || m.FinalAt == nil || !m.TLS || m.ClassRule != "default" {
		t.Errorf("detail = %+v", m)
	}
	if _, err := s.Get(context.Background(), "nope"); err != inspect.ErrNotFound {
		t.Errorf("Get(unknown) = %v", err)
	}
}

func TestStats(t *testing.T) {
	s := open(t, inspect.Options{})
	sample := insptest.NewSample(t0)
	feed(t, s, sample.Events, sample.Mailjet...)
	st, err := s.Stats(context.Background(), t0.Add(-time.Hour), t0.Add(time.Hour), 10*time.Minute)
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
	if st.LatencyAvgMS <= 0 {
		t.Error("no latency")
	}
}
