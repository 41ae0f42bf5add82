package storetest

import (
	"context"
	"fmt"
	"github.com/mjrelay/mjrelay/mailjet"
	"sync"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/mailjet/webhook"
	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// testFlushedSurvives: what a Flush returned for is there after a restart
// and after the process died without Close, and the store opened again
// goes on recording into the same messages.
func testFlushedSurvives(t *testing.T, h Harness) {
	for _, restart := range []struct {
		name string
		fn   func(*handle, *testing.T) *handle
	}{{"restart", (*handle).restart}, {"crash", (*handle).crash}} {
		t.Run(restart.name, func(t *testing.T) {
			s := open(t, h, Options{KeepBodies: time.Hour})
			sample := NewSample(T0)
			Feed(t, s, sample.Events, sample.Mailjet...)
			s = restart.fn(s, t)
			states := sampleStates()
			checkSample(t, s, sample, states)
			retryLater(t, s, sample)
			s = restart.fn(s, t)
			states["retry"] = store.StateSent
			checkSample(t, s, sample, states)
			if m := get(t, s, sample.IDs["retry"]); len(m.AttemptList) != 2 {
				t.Errorf("the retried message has %d attempts, want 2", len(m.AttemptList))
			}
		})
	}
}

// retryLater records a second, successful attempt of the sample's deferred
// message (and flushes), as a restarted relay would.
func retryLater(t *testing.T, s store.Store, sample *Sample) {
	t.Helper()
	id := sample.IDs["retry"]
	ok := trafficlog.RcptResult{Rcpt: "buyer@slow.example", Status: "delivered", Reply: mailjet.ParseReply("250 OK")}
	evs := NewFlow(T0.Add(20*time.Second), id, "sales@acme.example", []string{ok.Rcpt}, "Quotation S00017").
		Attempt("smtp", "451", ok).Attempt("smtp", "250 OK", ok).Delivered().Events()
	Feed(t, s, evs[1:]) // the second attempt and its outcome
	if m := get(t, s, id); m.State != store.StateSent {
		t.Fatalf("retried message: %q", m.State)
	}
}

// testConcurrentRecordAndQuery records messages from several goroutines
// while others list, search and read statistics: no query fails, a page
// lists each message once and only messages as recorded, and once flushed
// every message recorded is there in its final state, unless the store
// counted it as dropped. (Newest first is checked by Paging: with
// sessions recording at once, the order is the store's, which may put a
// message received a moment earlier after another.)
func testConcurrentRecordAndQuery(t *testing.T, h Harness) {
	s := open(t, h, Options{})
	const writers, perWriter = 4, 150
	ctx := context.Background()
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 16)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				at := T0.Add(time.Duration(i) * time.Second)
				id := QueueID(at, uint32(w*perWriter+i))
				rcpt := fmt.Sprintf("r%d@w%d.example", i, w)
				ok := trafficlog.RcptResult{Rcpt: rcpt, Status: "delivered", Reply: mailjet.ParseReply("250 OK")}
				for _, e := range NewFlow(at, id, "s@acme.example", []string{rcpt}, "concurrent").
					Received(nil).Attempt("smtp", "250 OK", ok).Delivered().Events() {
					s.Record(e)
				}
			}
		})
	}
	var readers sync.WaitGroup
	for r := range 2 {
		readers.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-done:
					return
				default:
				}
				var err error
				switch (n + r) % 3 {
				case 0:
					err = checkPage(ctx, s, store.Filter{Limit: 100})
				case 1:
					err = checkPage(ctx, s, store.Filter{Q: "concurrent", To: fmt.Sprintf("w%d.example", n%writers)})
				case 2:
					_, err = s.Stats(ctx, T0.Add(-time.Hour), T0.Add(time.Hour), time.Minute)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	close(done)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	dropped := s.Health().DroppedEvents
	p, err := s.List(ctx, store.Filter{Limit: 1000, State: store.StateSent})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(p.Messages); n != writers*perWriter && (dropped == 0 || uint64(n) < writers*perWriter-dropped) {
		t.Errorf("%d messages sent, want %d (dropped %d)", n, writers*perWriter, dropped)
	}
	if dropped == 0 {
		if ids := IDs(t, s, store.Filter{Limit: 1000}); len(ids) != writers*perWriter {
			t.Errorf("%d messages stored, want %d", len(ids), writers*perWriter)
		}
	}
}

// checkPage lists f while testConcurrentRecordAndQuery records.
func checkPage(ctx context.Context, s store.Store, f store.Filter) error {
	p, err := s.List(ctx, f)
	if err != nil {
		return fmt.Errorf("List(%+v) while recording: %w", f, err)
	}
	seen := map[string]bool{}
	for _, m := range p.Messages {
		if seen[m.ID] || m.Subject != "concurrent" || len(m.To) != 1 || (m.State != store.StateQueued && m.State != store.StateSent) {
			return fmt.Errorf("List(%+v) while recording: %+v (listed twice: %v)", f, m, seen[m.ID])
		}
		seen[m.ID] = true
	}
	if len(p.Messages) > max(f.Limit, 50) {
		return fmt.Errorf("List(%+v) while recording: %d messages", f, len(p.Messages))
	}
	return nil
}

// testConcurrentMailjetEvents: Mailjet's events for known messages, posted
// by several webhook calls at once while the relay records new mail, all
// reach their messages.
func testConcurrentMailjetEvents(t *testing.T, h Harness) {
	s := open(t, h, Options{})
	const n = 200
	var evs []trafficlog.Event
	var mj []webhook.Event
	for i := range n {
		at := T0.Add(time.Duration(i) * time.Second)
		id := QueueID(at, uint32(i))
		rcpt := fmt.Sprintf("r%d@x.example", i)
		ok := trafficlog.RcptResult{Rcpt: rcpt, Status: "delivered", Reply: mailjet.ParseReply("250 OK")}
		evs = append(evs, NewFlow(at, id, "s@acme.example", []string{rcpt}, "joined").
			Received(nil).Attempt("api", "250 OK", ok).Delivered().Events()...)
		kind := "sent"
		if i%4 == 0 {
			kind = "bounce"
		}
		mj = append(mj, Mailjet(at.Add(time.Minute), kind, id, rcpt, int64(1e15)+int64(i)))
	}
	Feed(t, s, evs)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 4 {
		wg.Go(func() {
			for i := w * 10; i < n; i += 4 * 10 {
				if err := s.RecordMailjet(ctx, mj[i:min(i+10, n)]); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 100 {
			at := T0.Add(time.Hour + time.Duration(i)*time.Second)
			for _, e := range NewFlow(at, QueueID(at, uint32(n+i)), "s@acme.example", []string{"new@y.example"}, "new").Received(nil).Events() {
				s.Record(e)
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{store.StateDelivered: 0, store.StateBounced: 0}
	for i := range n {
		state := store.StateDelivered
		if i%4 == 0 {
			state = store.StateBounced
		}
		want[state]++
	}
	for state, w := range want {
		if ids := IDs(t, s, store.Filter{State: state, Limit: 1000}); len(ids) != w {
			t.Errorf("%d messages %s, want %d", len(ids), state, w)
		}
	}
	if ids := IDs(t, s, store.Filter{Q: "new", Limit: 1000}); len(ids) != 100 && s.Health().DroppedEvents == 0 {
		t.Errorf("%d new messages, want 100", len(ids))
	}
}
