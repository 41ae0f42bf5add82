package cluster_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/cluster"
	"github.com/mjrelay/mjrelay/relay/pg"
	"github.com/mjrelay/mjrelay/relay/pg/pgtest"
	"github.com/mjrelay/mjrelay/relay/pgqueue"
	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

func openQueue(t *testing.T, url string, o pgqueue.Options) *pgqueue.Queue {
	t.Helper()
	pool, err := pg.Open(context.Background(), pg.Options{URL: url, MaxConns: 6})
	if err != nil {
		t.Fatal(err)
	}
	if o.Lease == 0 {
		o.Lease = 10 * time.Second
	}
	q, err := pgqueue.Open(context.Background(), pool, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close(); pool.Close() })
	return q
}

// TestDeleteOfAMessageAnotherNodeHolds: node b deletes a message node a
// holds (claimed, about to be attempted): the request reaches node a
// (its OnDelete: its scheduler decides), and b reports success once a has
// removed it. A message nobody holds is deleted in the database, and the
// deletion recorded where it was asked; an unknown id is ErrNotFound; when
// the holder does not act, b says which node holds it.
func TestDeleteOfAMessageAnotherNodeHolds(t *testing.T) {
	url := pgtest.DB(t)
	ctx := context.Background()
	a := openQueue(t, url, pgqueue.Options{Node: "a"})
	b := openQueue(t, url, pgqueue.Options{Node: "b"})
	var mu sync.Mutex
	held := map[string]bool{}
	a.Subscribe(func(it queue.Item) { mu.Lock(); held[it.Envelope.ID] = true; mu.Unlock() })
	var asked []string
	act := true
	a.OnDelete(func(id string) {
		mu.Lock()
		asked = append(asked, id)
		doIt := act
		mu.Unlock()
		if doIt {
			a.Deliverer().Done(ctx, id) // as a's scheduler does when not in flight
		}
	})
	put := func() string {
		env := &queue.Envelope{ID: b.NewID(), Received: time.Now(), From: "a@example.com", To: []string{"x@example.org"}}
		if err := b.Put(ctx, env, []byte("Subject: x\r\n\r\nx\r\n")); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			mu.Lock()
			ok := held[env.ID]
			mu.Unlock()
			if ok {
				return env.ID
			}
			if time.Now().After(deadline) {
				t.Fatal("node a did not claim the message")
			}
		}
	}
	var rec trafficlog.Memory
	ctl := cluster.Control{Queue: b, PG: b, Traffic: &rec, Wait: 5 * time.Second}

	id := put()
	if err := ctl.Delete(ctx, id); err != nil {
		t.Fatalf("delete through node b of a message node a holds: %v", err)
	}
	if mu.Lock(); len(asked) != 1 || asked[0] != id {
		t.Errorf("node a was asked to delete %v, want [%s]", asked, id)
	}
	mu.Unlock()
	if _, err := b.Get(id); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("still queued: %v", err)
	}

	mu.Lock()
	act = false
	mu.Unlock()
	id2 := put()
	ctl.Wait = 300 * time.Millisecond
	if err := ctl.Delete(ctx, id2); err == nil || !strings.Contains(err.Error(), "held by node a") {
		t.Errorf("delete of a message whose holder does not act: %v, want it to name node a", err)
	}

	// Unheld: deleted in the database, recorded here.
	admin := openQueue(t, url, pgqueue.Options{Node: "admin", Admin: true})
	env := &queue.Envelope{ID: admin.NewID(), Received: time.Now().Add(time.Hour), From: "a@example.com", To: []string{"x@example.org"}}
	if err := admin.Put(ctx, env, []byte("Subject: later\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := admin.SetState(ctx, queue.State{ID: env.ID, Attempts: 1, Next: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := ctl.Delete(ctx, env.ID); err != nil {
		t.Fatal(err)
	}
	if evs := rec.Events(trafficlog.Deleted); len(evs) != 1 || evs[0].ID != env.ID {
		t.Errorf("deleted events recorded on node b: %+v", evs)
	}
	if err := ctl.Delete(ctx, "nope"); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
}
