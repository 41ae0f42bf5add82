package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/mailjet/webhook"
	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// The backends' benchmarks share their traffic and their queries, so
// that their figures compare: BenchMessages messages of TrafficGen over 30
// days from BenchStart, the queries of BenchQueries.

// BenchMessages is the size of the benchmark stores.
const BenchMessages = 1_000_000

// BenchStart is when the benchmark traffic starts.
var BenchStart = time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)

// TrafficGen makes plausible Odoo traffic: a few senders, a long tail of
// recipients (some very frequent), subjects from templates with numbers.
type TrafficGen struct{ r *rand.Rand }

// NewTrafficGen returns a generator; the same seed makes the same traffic.
func NewTrafficGen(seed uint64) *TrafficGen { return &TrafficGen{r: rand.New(rand.NewPCG(seed, 42))} }

var (
	benchSenders  = []string{"invoices", "sales", "notifications", "hr", "support", "news", "purchase", "accounting"}
	benchDomains  = []string{"client.example", "gmail.example", "outlook.example", "corp.example", "shop.example", "bigco.example"}
	benchSubjects = []string{"Invoice INV/2026/%05d", "Quotation S%05d", "Order confirmation SO%05d", "Delivery WH/OUT/%05d",
		"Password reset request %d", "Your ticket #%d has been updated", "Payment receipt %d", "Spring newsletter %d"}
)

// Message returns the events of message i of n (spread over 30 days).
func (g *TrafficGen) Message(i, n int) ([]trafficlog.Event, []webhook.Event) {
	r := g.r
	t := BenchStart.Add(time.Duration(i) * (30 * 24 * time.Hour / time.Duration(n)))
	id := fmt.Sprintf("%012x%08x", t.UnixMilli(), uint32(i))
	sender := benchSenders[r.IntN(len(benchSenders))] + "@acme.example"
	var rcpt string
	if r.IntN(10) == 0 {
		rcpt = fmt.Sprintf("frequent%d@%s", r.IntN(20), benchDomains[0]) // a few very frequent recipients
	} else {
		rcpt = fmt.Sprintf("user%d@%s", r.IntN(200_000), benchDomains[r.IntN(len(benchDomains))])
	}
	tmpl := r.IntN(len(benchSubjects))
	class, rule := "transactional", "default"
	if tmpl == len(benchSubjects)-1 {
		class, rule = "bulk", "list-unsubscribe-post"
	}
	base := trafficlog.Event{ID: id, From: sender, HeaderFrom: sender, To: []string{rcpt},
		Subject: fmt.Sprintf(benchSubjects[tmpl], r.IntN(100_000)), MessageID: "<" + id + "@odoo.acme.example>",
		Size: int64(2000 + r.IntN(60000)), Client: "10.0.0.5:4" + fmt.Sprint(1000+r.IntN(9000)), User: "odoo",
		Class: class, ClassRule: rule}
	ev := func(kind trafficlog.Kind, d time.Duration) trafficlog.Event {
		e := base
		e.Event, e.Time = kind, t.Add(d)
		return e
	}
	p := r.IntN(100)
	if p < 2 {
		e := ev(trafficlog.Refused, 0)
		e.ID, e.Stage, e.Reason, e.Reply = "", "data", "sender_not_found", mailjet.ParseReply("550 5.7.1 not a verified sender")
		return []trafficlog.Event{e}, nil
	}
	recv := ev(trafficlog.Received, 0)
	recv.Helo, recv.TLS = "odoo.acme.example", true
	mjID := int64(288230376151711744) + int64(i)
	attempt := func(n int, reply string, d time.Duration) trafficlog.Event {
		e := ev(trafficlog.Attempt, d)
		e.Transport, e.Upstream, e.Reply, e.Attempt, e.DurationMS = "smtp", "in-v3.mailjet.com:587", mailjet.ParseReply(reply), n, 150+float64(r.IntN(300))
		e.Rcpts = []trafficlog.RcptResult{{Rcpt: rcpt, Reply: mailjet.ParseReply(reply), MessageID: mjID}}
		return e
	}
	outcome := func(kind trafficlog.Kind, reply string, d time.Duration) trafficlog.Event {
		e := ev(kind, d)
		e.Transport, e.Reply, e.DurationMS = "smtp", mailjet.ParseReply(reply), float64(d.Milliseconds())
		return e
	}
	evs := []trafficlog.Event{recv}
	switch {
	case p < 5: // failed
		evs = append(evs, attempt(1, "550 5.1.1 Recipient rejected", time.Second),
			outcome(trafficlog.Failed, "550 5.1.1 Recipient rejected", time.Second))
		return evs, nil
	case p < 10: // deferred, then delivered
		evs = append(evs, attempt(1, "421 4.7.0 Try again later", time.Second),
			outcome(trafficlog.Deferred, "421 4.7.0 Try again later", time.Second),
			attempt(2, "250 OK queued", time.Minute), outcome(trafficlog.Delivered, "250 OK queued", time.Minute))
	case p < 11: // still deferred
		evs = append(evs, attempt(1, "421 4.7.0 Try again later", time.Second),
			outcome(trafficlog.Deferred, "421 4.7.0 Try again later", time.Second))
		return evs, nil
	default:
		evs = append(evs, attempt(1, "250 OK queued", time.Second), outcome(trafficlog.Delivered, "250 OK queued", time.Second))
	}
	var mj []webhook.Event
	switch q := r.IntN(100); {
	case q < 60:
		mj = append(mj, webhook.Event{Event: "sent", Time: t.Add(5 * time.Second), Email: rcpt, MessageID: mjID, CustomID: id,
			SMTPReply: "sent (250 2.0.0 OK)"})
	case q < 63:
		mj = append(mj, webhook.Event{Event: "bounce", Time: t.Add(5 * time.Second), Email: rcpt, MessageID: mjID, CustomID: id,
			ErrorRelatedTo: "recipient", Error: "user unknown", HardBounce: true})
	}
	return evs, mj
}

// BenchQueries times the common queries over a store of the benchmark
// traffic: List with each filter, Get, Stats over a day.
func BenchQueries(b *testing.B, s store.Store) {
	ctx := context.Background()
	mid := BenchStart.Add(15 * 24 * time.Hour)
	latest, err := s.List(ctx, store.Filter{Limit: 50})
	if err != nil || len(latest.Messages) == 0 {
		b.Fatalf("latest page: %v", err)
	}
	deep := store.Filter{Limit: 50}
	for range 20 {
		p, _ := s.List(ctx, deep)
		deep.Cursor = p.Next
	}
	someID := latest.Messages[10].ID
	queries := []struct {
		name string
		f    store.Filter
	}{
		{"latest", store.Filter{Limit: 50}},
		{"page21", deep},
		{"state=failed", store.Filter{State: "failed", Limit: 50}},
		{"state=deferred(rare)", store.Filter{State: "deferred", Limit: 50}},
		{"state=failed,bounced,refused", store.Filter{State: "failed,bounced,refused", Limit: 50}},
		{"class=bulk", store.Filter{Class: "bulk", Limit: 50}},
		{"to=address", store.Filter{To: "user4242@client.example", Limit: 50}},
		{"to=frequent", store.Filter{To: "frequent3@client.example", Limit: 50}},
		{"to=domain", store.Filter{To: "outlook.example", Limit: 50}},
		{"from=address", store.Filter{From: "invoices@acme.example", Limit: 50}},
		{"from+state", store.Filter{From: "sales@acme.example", State: "failed", Limit: 50}},
		{"q=word", store.Filter{Q: "invoice", Limit: 50}},
		{"q=number", store.Filter{Q: "INV/2026/04242", Limit: 50}},
		{"q=address", store.Filter{Q: "user4242@client.example", Limit: 50}},
		{"q=domain", store.Filter{Q: "outlook.example", Limit: 50}},
		{"q=mailjet-id", store.Filter{Q: "288230376151911744", Limit: 50}},
		{"since/until 1h", store.Filter{Since: mid, Until: mid.Add(time.Hour), Limit: 50}},
		{"since/until+state", store.Filter{Since: mid, Until: mid.Add(24 * time.Hour), State: "failed", Limit: 50}},
		{"reason", store.Filter{Reason: "550 5.1.1", Limit: 50}},
		{"reason(rare)", store.Filter{Reason: "421 4.7.0", Limit: 50}},
		{"reason+since/until", store.Filter{Reason: "550 5.1.1", Since: mid, Until: mid.Add(24 * time.Hour), Limit: 50}},
		{"q=upstream-id(none)", store.Filter{Q: "4XqZ9k1aB2", Limit: 50}},
	}
	for _, q := range queries {
		b.Run("List/"+q.name, func(b *testing.B) {
			var n int
			for b.Loop() {
				p, err := s.List(ctx, q.f)
				if err != nil {
					b.Fatal(err)
				}
				n = len(p.Messages)
			}
			b.ReportMetric(float64(n), "rows")
		})
	}
	b.Run("Get", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Get(ctx, someID); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Funnel/30d", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Funnel(ctx, BenchStart, BenchStart.Add(30*24*time.Hour), time.UTC); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Stats/24h", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Stats(ctx, mid, mid.Add(24*time.Hour), 10*time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchFill records messages [from, from+n) of the benchmark traffic of
// seed into s, no faster than s writes them (at most backlog events
// waiting), and flushes; it returns how many events it recorded.
func BenchFill(s store.Store, seed uint64, from, n, backlog int) (int, error) {
	g := NewTrafficGen(seed)
	ctx := context.Background()
	events := 0
	for i := from; i < from+n; i++ {
		evs, mj := g.Message(i, BenchMessages)
		for s.Health().Pending > backlog {
			time.Sleep(time.Millisecond)
		}
		for _, e := range evs {
			s.Record(e)
		}
		if len(mj) > 0 {
			if err := s.RecordMailjet(ctx, mj); err != nil {
				return events, err
			}
		}
		events += len(evs) + len(mj)
	}
	return events, s.Flush(ctx)
}

// BenchRecord measures a store's sustained writing through Record: b.N
// messages of the benchmark traffic after the store's BenchMessages (each
// received, attempted, delivered, and a Mailjet event for 60% of them),
// recorded no faster than the store writes (it measures the writer, not
// the drops), then flushed.
func BenchRecord(b *testing.B, s store.Store, backlog int) {
	b.ResetTimer()
	start := time.Now()
	events, err := BenchFill(s, 2, BenchMessages, b.N, backlog)
	if err != nil {
		b.Fatal(err)
	}
	el := time.Since(start)
	if d := s.Health().DroppedEvents; d > 0 {
		b.Logf("%d events dropped (buffer full)", d)
	}
	b.ReportMetric(float64(events)/el.Seconds(), "events/s")
}
