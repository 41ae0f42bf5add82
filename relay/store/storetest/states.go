package storetest

import (
	"context"
	"errors"
	"fmt"
	"github.com/mjrelay/mjrelay/mailjet"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/mailjet/webhook"
	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// testStates feeds the relay's event sequences and Mailjet's events and
// checks the resulting message state, recipients and timeline.
func testStates(t *testing.T, h Harness) {
	id := QueueID(T0, 1)
	a, b := "a@x.example", "b@y.example"
	ok := func(r string) trafficlog.RcptResult {
		return trafficlog.RcptResult{Rcpt: r, Status: "delivered", Reply: mailjet.ParseReply("250 OK"), MessageID: 7000000000000001}
	}
	temp := func(r string) trafficlog.RcptResult {
		return trafficlog.RcptResult{Rcpt: r, Status: "temporary", Reply: mailjet.ParseReply("451 later")}
	}
	flow := func(to ...string) *Flow { return NewFlow(T0, id, "s@acme.example", to, "Subject") }
	tests := []struct {
		name   string
		events []trafficlog.Event
		mj     []webhook.Event
		state  store.State
		rcpts  map[string]store.State
		steps  []string
	}{
		{name: "queued", events: flow(a).Received(nil).Events(), state: "queued",
			rcpts: map[string]store.State{a: "queued"}, steps: []string{"received", "policy"}},
		{name: "sent", events: flow(a).Received(nil).Attempt("smtp", "250 OK", ok(a)).Delivered().Events(), state: "sent",
			rcpts: map[string]store.State{a: "sent"}, steps: []string{"received", "policy", "attempt", "delivered"}},
		{name: "delivered by Mailjet", events: flow(a).Received(nil).Attempt("smtp", "250 OK", ok(a)).Delivered().Events(),
			mj: []webhook.Event{Mailjet(T0.Add(time.Minute), "sent", id, a, 0)}, state: "delivered",
			rcpts: map[string]store.State{a: "delivered"}, steps: []string{"received", "policy", "attempt", "delivered", "mailjet:sent"}},
		{name: "bounce after sent", events: flow(a).Received(nil).Attempt("smtp", "250 OK", ok(a)).Delivered().Events(),
			mj: []webhook.Event{Mailjet(T0.Add(time.Minute), "sent", id, a, 0),
				Mailjet(T0.Add(2*time.Minute), "bounce", id, a, 0),
				Mailjet(T0.Add(3*time.Minute), "sent", id, a, 0)}, // a late duplicate does not undo it
			state: "bounced", rcpts: map[string]store.State{a: "bounced"}},
		{name: "open implies delivery", events: flow(a).Received(nil).Attempt("smtp", "250 OK", ok(a)).Delivered().Events(),
			mj: []webhook.Event{Mailjet(T0.Add(time.Minute), "open", id, a, 0)}, state: "delivered"},
		{name: "deferred", events: flow(a).Received(nil).Attempt("smtp", "451 later", temp(a)).Deferred("451 later").Events(),
			state: "deferred", steps: []string{"received", "policy", "attempt", "deferred"}},
		{name: "partial: one sent, one deferred", events: flow(a, b).Received(nil).Attempt("smtp", "", ok(a), temp(b)).
			Delivered(a).Deferred("451 later", b).Events(), state: "deferred", rcpts: map[string]store.State{a: "sent", b: "deferred"}},
		{name: "partial, then the rest fails", events: flow(a, b).Received(nil).Attempt("smtp", "", ok(a), temp(b)).
			Delivered(a).Deferred("451 later", b).Attempt("smtp", "550 no", trafficlog.RcptResult{Rcpt: b, Reply: mailjet.ParseReply("550 no")}).
			Failed("550 no", "permanent error from the upstream", b).Events(), state: "failed",
			rcpts: map[string]store.State{a: "sent", b: "failed"}},
		{name: "deleted while deferred", events: flow(a).Received(nil).Attempt("smtp", "451", temp(a)).Deferred("451").Deleted().Events(),
			state: "deleted", rcpts: map[string]store.State{a: "deleted"}},
		{name: "sandboxed", events: flow(a).Received(nil).Attempt("sandbox", "250", ok(a)).Sandboxed().Events(), state: "sandboxed"},
		{name: "delivery recorded before receipt", events: func() []trafficlog.Event {
			evs := flow(a).Received(nil).Attempt("smtp", "250 OK", ok(a)).Delivered().Events()
			return append(evs[1:], evs[0]) // the worker can beat the SMTP session to the recorder
		}(), state: "sent", steps: []string{"received", "policy", "attempt", "delivered"}},
		{name: "aborted is not stored", events: []trafficlog.Event{{Time: T0, Event: trafficlog.Aborted, Client: "192.0.2.1:1"}},
			state: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, h, Options{})
			Feed(t, s, tc.events, tc.mj...)
			if tc.state == "" {
				if ids := IDs(t, s, store.Filter{}); len(ids) != 0 {
					t.Fatalf("List = %v; want nothing", ids)
				}
				return
			}
			m := get(t, s, id)
			if m.State != tc.state {
				t.Errorf("state = %q, want %q (timeline %v)", m.State, tc.state, Kinds(m))
			}
			for r, want := range tc.rcpts {
				if got := rcptStates(m)[r]; got != want {
					t.Errorf("recipient %s: state %q, want %q", r, got, want)
				}
			}
			if tc.steps != nil && !slices.Equal(Kinds(m), tc.steps) {
				t.Errorf("timeline = %v, want %v", Kinds(m), tc.steps)
			}
			if m.Client == "" || m.Subject != "Subject" {
				t.Errorf("envelope not recorded: %+v", m.Summary)
			}
		})
	}
}

func testRefusedGetsAnID(t *testing.T, h Harness) {
	s := open(t, h, Options{})
	r := Refused(T0, "data", "sender_not_found", "550 5.7.1 no", "spoof@evil.example", []string{"v@client.example"})
	Feed(t, s, []trafficlog.Event{r, r})
	ids := IDs(t, s, store.Filter{State: "refused"})
	if len(ids) != 2 || ids[0] == "" || ids[0] == ids[1] {
		t.Fatalf("refusals = %v, want two with distinct ids", ids)
	}
	m := get(t, s, ids[0])
	if m.Stage != "data" || m.Reason != "sender_not_found" || m.Reply != "550 5.7.1 no" || !m.Timeline[0].Bad {
		t.Errorf("refusal = %+v", m)
	}
}

// testAggregatedRefusal: a refused event that stands for many (the SMTP
// side aggregates floods of one refusal) counts as many in the stats and
// says so in its timeline.
func testAggregatedRefusal(t *testing.T, h Harness) {
	s := open(t, h, Options{})
	one := Refused(T0, "mail", "queue_full", "452 4.3.1 full", "a@example.com", nil)
	many := one
	many.Time, many.Count = T0.Add(time.Minute), 41
	Feed(t, s, []trafficlog.Event{one, many})
	st, err := s.Stats(context.Background(), T0.Add(-time.Hour), T0.Add(time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if st.Totals["refused"] != 42 {
		t.Errorf("refused total %d, want 42", st.Totals["refused"])
	}
	ids := IDs(t, s, store.Filter{State: "refused"})
	if len(ids) != 2 {
		t.Fatalf("refusals listed: %v", ids)
	}
	var texts []string
	for _, id := range ids {
		texts = append(texts, get(t, s, id).Timeline[0].Text)
	}
	if !slices.ContainsFunc(texts, func(s string) bool { return strings.Contains(s, "stands for 41 refusals") }) {
		t.Errorf("timelines %q: none says it stands for 41 refusals", texts)
	}
}

// testMailjetJoin joins webhook events by CustomID, MessageID or UUID.
func testMailjetJoin(t *testing.T, h Harness) {
	sample := NewSample(T0)
	inv := sample.IDs["invoice"]
	later := T0.Add(time.Hour)
	tests := []struct {
		name  string
		ev    webhook.Event
		state store.State
	}{
		{"by CustomID", Mailjet(later, "spam", inv, "mr.x@client.example", 0), "spam"},
		{"by MessageID", Mailjet(later, "spam", "", "mr.x@client.example", 288230376151711744), "spam"},
		{"by UUID", webhook.Event{Event: "unsub", Time: later, MessageUUID: "1ab23cd4-0000-4000-8000-000000000001"}, "unsub"},
		{"unknown CustomID falls back to MessageID", Mailjet(later, "blocked", "not-ours", "", 288230376151711744), "blocked"},
		{"not ours", Mailjet(later, "bounce", "someone-else", "z@z.example", 99), "sent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, h, Options{})
			Feed(t, s, sample.Events, tc.ev)
			if m := get(t, s, inv); m.State != tc.state {
				t.Errorf("state = %q, want %q", m.State, tc.state)
			}
		})
	}
}

// testReceivedAfterAttempt: delivery may record its attempt before the
// SMTP session records the message as received; the message is still
// found by its subject and header From, in one batch or across two.
func testReceivedAfterAttempt(t *testing.T, h Harness) {
	for _, split := range []bool{false, true} {
		t.Run(fmt.Sprintf("across flushes=%v", split), func(t *testing.T) {
			s := open(t, h, Options{})
			id := QueueID(T0, 1)
			ok := trafficlog.RcptResult{Rcpt: "mr.x@client.example", Status: "delivered", Reply: mailjet.ParseReply("250 OK")}
			evs := NewFlow(T0, id, "bounce@acme.example", []string{ok.Rcpt}, "Invoice INV/2026/0042").
				Received(nil).Attempt("smtp", "250 OK", ok).Delivered().Events()
			recv, attempt := evs[0], evs[1]
			attempt.Subject, attempt.HeaderFrom = "", "" // a first event that knows less
			recv.HeaderFrom = "invoices@acme.example"
			if split {
				Feed(t, s, []trafficlog.Event{attempt})
				Feed(t, s, []trafficlog.Event{recv, evs[2]})
			} else {
				Feed(t, s, []trafficlog.Event{attempt, recv, evs[2]})
			}
			for _, f := range []store.Filter{{Q: "INV/2026/0042"}, {Q: "invoice"}, {From: "invoices@acme.example"}, {State: "sent"}} {
				p, err := s.List(context.Background(), f)
				if err != nil {
					t.Fatal(err)
				}
				if len(p.Messages) != 1 || p.Messages[0].ID != id || p.Messages[0].Subject != recv.Subject {
					t.Errorf("List(%+v) = %+v, want %s with its subject", f, p.Messages, id)
				}
			}
		})
	}
}

// testRawBodies keeps bodies while queued and KeepBodies after the final
// state, and none at all when KeepBodies is 0.
func testRawBodies(t *testing.T, h Harness) {
	raw := []byte("Subject: hi\r\n\r\nbody body body\r\n")
	tests := []struct {
		name    string
		keep    time.Duration
		final   bool
		advance time.Duration
		want    bool
	}{
		{"queued, kept", time.Hour, false, 100 * time.Hour, true},
		{"final, within keep_bodies", time.Hour, true, 30 * time.Minute, true},
		{"final, past keep_bodies", time.Hour, true, 2 * time.Hour, false},
		{"keep_bodies 0", 0, false, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock(T0)
			s := open(t, h, Options{KeepBodies: tc.keep, Retention: 1000 * time.Hour, Now: c.now})
			if s.WantsBodies() != (tc.keep > 0) {
				t.Fatalf("WantsBodies = %v", s.WantsBodies())
			}
			id := QueueID(T0, 9)
			f := NewFlow(T0, id, "a@acme.example", []string{"b@b.example"}, "s").Received(raw)
			if tc.final {
				f.Attempt("smtp", "250", trafficlog.RcptResult{Rcpt: "b@b.example", Reply: mailjet.ParseReply("250")}).Delivered()
			}
			Feed(t, s, f.Events())
			c.set(f.Time().Add(tc.advance))
			if err := s.Prune(context.Background()); err != nil {
				t.Fatal(err)
			}
			r, n, err := s.Raw(context.Background(), id)
			if !tc.want {
				if !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("Raw = %v, want ErrNotFound", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(r)
			if string(got) != string(raw) || n != int64(len(raw)) {
				t.Fatalf("Raw = %q (%d), want %q", got, n, raw)
			}
			if m := get(t, s, id); !m.HasRaw || m.RawSize != int64(len(raw)) {
				t.Errorf("HasRaw = %v, RawSize = %d", m.HasRaw, m.RawSize)
			}
		})
	}
}

// testRetention prunes records past the retention and everything indexed
// with them, keeping newer and still-queued ones.
func testRetention(t *testing.T, h Harness) {
	c := newClock(T0)
	s := open(t, h, Options{Retention: 24 * time.Hour, KeepBodies: time.Hour, Now: c.now})
	old := NewFlow(T0, QueueID(T0, 1), "a@acme.example", []string{"old@x.example"}, "old one").
		Received([]byte("x")).Attempt("smtp", "250", trafficlog.RcptResult{Rcpt: "old@x.example"}).Delivered()
	stuck := NewFlow(T0, QueueID(T0, 2), "a@acme.example", []string{"stuck@x.example"}, "stuck one").
		Received(nil).Attempt("smtp", "451", trafficlog.RcptResult{Rcpt: "stuck@x.example"}).Deferred("451")
	t1 := T0.Add(30 * time.Hour)
	fresh := NewFlow(t1, QueueID(t1, 3), "a@acme.example", []string{"new@x.example"}, "new one").Received(nil)
	Feed(t, s, append(append(old.Events(), stuck.Events()...), fresh.Events()...),
		Mailjet(T0.Add(time.Minute), "sent", QueueID(T0, 1), "old@x.example", 5555555))
	c.set(t1)
	if err := s.Prune(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, f := range []store.Filter{{}, {To: "old@x.example"}, {To: "x.example"}, {Q: "old"}, {Q: "5555555"}} {
		p, err := s.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range p.Messages {
			if m.Subject == "old one" {
				t.Errorf("filter %+v still finds the pruned message", f)
			}
		}
	}
	if ids := IDs(t, s, store.Filter{}); len(ids) != 2 {
		t.Errorf("after pruning: %v, want the stuck and the new one", ids)
	}
	if _, err := s.Get(ctx, QueueID(T0, 1)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(pruned) = %v", err)
	}
}
