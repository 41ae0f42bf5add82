// Package feedbacktest is the conformance suite of feedback.Outbox: every
// backend (the embedded journal, a shared database) passes Run.
package feedbacktest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/feedback"
)

// Open opens the backend under test on the same storage each time it is
// called (after the previous one was closed): the suite reopens it to
// check what survives.
type Open func(t *testing.T) feedback.Outbox

// NewStorage returns an Open for a fresh, empty storage.
type NewStorage func(t *testing.T) Open

// Item returns a DSN item for (message, rcpt), for tests.
func Item(message, rcpt string) feedback.Item {
	return feedback.Item{Key: feedback.KeyOf(message, rcpt, feedback.TriggerBounce), Message: message, Recipient: rcpt,
		Trigger: feedback.TriggerBounce, Action: feedback.ActionDSN, Source: "test", Time: time.Unix(1700000000, 0).UTC(),
		Reason: "line one\nline two \x00 \"quoted\" {\"op\":\"f\"}", Status: "5.1.1", Headers: []byte("Message-Id: <" + message + "@x>\r\n")}
}

// Run runs the suite.
func Run(t *testing.T, fresh NewStorage) {
	ctx := context.Background()
	t.Run("AddDeduplicates", func(t *testing.T) {
		open := fresh(t)
		o := open(t)
		a, b := Item("m1", "a@x.org"), Item("m1", "b@x.org")
		added, err := o.Add(ctx, []feedback.Item{a, b, a})
		if err != nil || len(added) != 2 {
			t.Fatalf("added %d, %v", len(added), err)
		}
		upper := Item("m1", "A@X.org")
		if added, _ := o.Add(ctx, []feedback.Item{upper, b}); len(added) != 0 {
			t.Fatalf("pending keys added again: %v", added)
		}
		if err := o.Finish(ctx, a.Key, feedback.Result{Outcome: feedback.Reported, At: time.Now()}); err != nil {
			t.Fatal(err)
		}
		if added, _ := o.Add(ctx, []feedback.Item{a}); len(added) != 0 {
			t.Fatal("a finished key added again")
		}
		o.Close()
		o = open(t)
		defer o.Close()
		if added, _ := o.Add(ctx, []feedback.Item{a, b}); len(added) != 0 {
			t.Fatal("keys added again after a reopen")
		}
		st, _ := o.Stats(ctx)
		if st.Pending != 1 || st.Remembered != 1 {
			t.Fatalf("stats %+v", st)
		}
		// Forgotten keys may come again.
		if n, err := o.Forget(ctx, time.Now().Add(time.Minute)); err != nil || n != 1 {
			t.Fatalf("forgot %d, %v", n, err)
		}
		if added, _ := o.Add(ctx, []feedback.Item{a}); len(added) != 1 {
			t.Fatal("a forgotten key was not added")
		}
	})
	t.Run("ItemSurvivesIntact", func(t *testing.T) {
		open := fresh(t)
		o := open(t)
		it := Item("m2", "z@x.org")
		it.URL, it.Arrival = "https://erp/mailing/1/unsubscribe_oneclick?a=1&hash_token=x", time.Unix(1690000000, 0).UTC()
		o.Add(ctx, []feedback.Item{it})
		o.Close()
		o = open(t)
		defer o.Close()
		es, err := o.List(ctx, 10)
		if err != nil || len(es) != 1 {
			t.Fatalf("list %v %v", es, err)
		}
		got := es[0].Item
		if got.Reason != it.Reason || string(got.Headers) != string(it.Headers) || got.URL != it.URL ||
			!got.Arrival.Equal(it.Arrival) || !got.Time.Equal(it.Time) || got.Status != it.Status || got.Action != it.Action {
			t.Fatalf("read back %+v\nwant %+v", got, it)
		}
	})
	t.Run("ClaimLeaseRetry", func(t *testing.T) {
		open := fresh(t)
		o := open(t)
		now := time.Now()
		var items []feedback.Item
		for i := range 5 {
			items = append(items, Item(fmt.Sprintf("m%d", i), "r@x.org"))
		}
		o.Add(ctx, items)
		got, _ := o.Claim(ctx, now, 3, time.Minute)
		if len(got) != 3 {
			t.Fatalf("claimed %d", len(got))
		}
		rest, _ := o.Claim(ctx, now, 10, time.Minute)
		if len(rest) != 2 {
			t.Fatalf("leased items claimed again: %d", len(rest))
		}
		if again, _ := o.Claim(ctx, now.Add(2*time.Minute), 10, time.Minute); len(again) != 5 {
			t.Fatalf("expired leases: claimed %d", len(again))
		}
		next := now.Add(time.Hour)
		if err := o.Retry(ctx, got[0].Key, feedback.State{Attempts: 1, Next: next, LastError: "odoo down"}); err != nil {
			t.Fatal(err)
		}
		if err := o.Retry(ctx, "nope", feedback.State{}); err == nil {
			t.Fatal("retry of an unknown key")
		}
		o.Close()
		o = open(t)
		defer o.Close()
		due, _ := o.Claim(ctx, now.Add(3*time.Minute), 10, time.Minute)
		if len(due) != 4 {
			t.Fatalf("after reopen, due %d (the retried one waits)", len(due))
		}
		for _, e := range due {
			o.Finish(ctx, e.Key, feedback.Result{Outcome: feedback.Reported, At: now})
		}
		later, _ := o.Claim(ctx, next, 10, time.Minute)
		if len(later) != 1 || later[0].State.Attempts != 1 || later[0].State.LastError != "odoo down" || later[0].State.Added.IsZero() {
			t.Fatalf("retry state lost: %+v", later)
		}
		if err := o.Finish(ctx, later[0].Key, feedback.Result{Outcome: feedback.Failed, At: now}); err != nil {
			t.Fatal(err)
		}
		if err := o.Finish(ctx, later[0].Key, feedback.Result{Outcome: feedback.Failed, At: now}); err == nil {
			t.Fatal("finished twice")
		}
	})
	t.Run("ConcurrentAddsOfOneKey", func(t *testing.T) {
		open := fresh(t)
		o := open(t)
		defer o.Close()
		it := Item("mc", "r@x.org")
		var wg sync.WaitGroup
		var mu sync.Mutex
		total := 0
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				added, err := o.Add(ctx, []feedback.Item{it})
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				total += len(added)
				mu.Unlock()
			}()
		}
		wg.Wait()
		if total != 1 {
			t.Fatalf("added %d times", total)
		}
	})
	t.Run("ManyFinishedStayDeduplicated", func(t *testing.T) {
		open := fresh(t)
		o := open(t)
		var items []feedback.Item
		for i := range 3000 {
			items = append(items, Item(fmt.Sprintf("m%d", i), "r@x.org"))
		}
		o.Add(ctx, items)
		for _, it := range items[:2990] {
			o.Finish(ctx, it.Key, feedback.Result{Outcome: feedback.Reported, At: time.Now()})
		}
		o.Close()
		o = open(t)
		defer o.Close()
		if added, _ := o.Add(ctx, items); len(added) != 0 {
			t.Fatalf("%d keys added again", len(added))
		}
		if st, _ := o.Stats(ctx); st.Pending != 10 || st.Remembered != 2990 {
			t.Fatalf("stats %+v", st)
		}
	})
}
