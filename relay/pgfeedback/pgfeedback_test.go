package pgfeedback_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/feedback"
	"github.com/mjrelay/mjrelay/relay/feedback/feedbacktest"
	"github.com/mjrelay/mjrelay/relay/pg"
	"github.com/mjrelay/mjrelay/relay/pg/pgtest"
	"github.com/mjrelay/mjrelay/relay/pgfeedback"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// open opens an outbox on its own pool over the database url (a node).
func open(t testing.TB, url string) *pgfeedback.Outbox {
	t.Helper()
	o, err := pgfeedback.New(context.Background(), pgtest.Pool(t, url, 4), nil)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestConformance runs the outbox suite; a reopen is a new node's pool on
// the same database.
func TestConformance(t *testing.T) {
	feedbacktest.Run(t, func(t *testing.T) feedbacktest.Open {
		url := pgtest.DB(t)
		return func(t *testing.T) feedback.Outbox { return open(t, url) }
	})
}

// TestNodesClaimApart: reporters of several nodes claiming at once from one
// database never hold one item together, and all items are handed out.
func TestNodesClaimApart(t *testing.T) {
	url := pgtest.DB(t)
	ctx := context.Background()
	first := open(t, url)
	var items []feedback.Item
	for i := range 200 {
		items = append(items, feedbacktest.Item(fmt.Sprintf("m%d", i), "r@x.org"))
	}
	if added, err := first.Add(ctx, items); err != nil || len(added) != len(items) {
		t.Fatalf("added %d, %v", len(added), err)
	}
	now := time.Now()
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 4 {
		node := open(t, url)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				es, err := node.Claim(ctx, now, 7, time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				if len(es) == 0 {
					return
				}
				mu.Lock()
				for _, e := range es {
					seen[e.Key]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != len(items) {
		t.Fatalf("%d of %d items claimed", len(seen), len(items))
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("item %s claimed %d times", k, n)
		}
	}
}

// TestOpenWhileAway: the outbox of a node that starts while PostgreSQL is
// down opens; its schema is created once the server answers, and Add
// works then (it fails, temporarily, meanwhile).
func TestOpenWhileAway(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	o, err := pgfeedback.New(ctx, db.StoppedPool(t), nil)
	if err != nil {
		t.Fatalf("New with the server stopped: %v", err)
	}
	it := feedback.Item{Key: feedback.KeyOf("m1", "a@example.org", feedback.TriggerBounce), Message: "m1", Recipient: "a@example.org",
		Trigger: feedback.TriggerBounce, Time: time.Now()}
	if _, err := o.Add(ctx, []feedback.Item{it}); err == nil || !pg.Temporary(err) {
		t.Fatalf("Add with the server stopped: %v", err)
	}
	if err := db.Start(); err != nil {
		t.Fatal(err)
	}
	if added, err := o.Add(ctx, []feedback.Item{it}); err != nil || len(added) != 1 {
		t.Fatalf("Add once the server answers: %v, %v", added, err)
	}
}
