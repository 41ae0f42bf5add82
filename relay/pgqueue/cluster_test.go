package pgqueue_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/pg/pgtest"
	"github.com/mjrelay/mjrelay/relay/pgqueue"
	"github.com/mjrelay/mjrelay/relay/queue"
)

// seen collects what a subscriber was handed.
type seen struct {
	mu  sync.Mutex
	ids []string
}

func (s *seen) add(it queue.Item) { s.mu.Lock(); s.ids = append(s.ids, it.Envelope.ID); s.mu.Unlock() }
func (s *seen) n() int            { s.mu.Lock(); defer s.mu.Unlock(); return len(s.ids) }
func (s *seen) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ids...)
}

func putN(t *testing.T, q *pgqueue.Queue, n int, class string) []string {
	t.Helper()
	var ids []string
	for i := range n {
		env := &queue.Envelope{ID: q.NewID(), Received: time.Now(), From: "a@example.com", To: []string{"b@example.org"}, Class: class}
		if err := q.Put(context.Background(), env, []byte(fmt.Sprintf("Subject: %d\r\n\r\nx\r\n", i))); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, env.ID)
	}
	return ids
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestNewMailWakesOtherNodes: a message put on one node is claimed by
// another at once, through LISTEN/NOTIFY: the claim loop's own tick is a
// quarter of the lease (15 s here), far beyond the wait.
func TestNewMailWakesOtherNodes(t *testing.T) {
	url := pgtest.DB(t)
	a := open(t, url, pgqueue.Options{Node: "a", Lease: time.Minute})
	b := open(t, url, pgqueue.Options{Node: "b", Lease: time.Minute, Admin: true})
	var got seen
	a.Subscribe(got.add)
	time.Sleep(200 * time.Millisecond) // a's first claim round is over
	ids := putN(t, b, 1, "transactional")
	waitFor(t, "node a to claim the message node b put", 5*time.Second, func() bool { return got.n() == 1 })
	if got.list()[0] != ids[0] {
		t.Fatalf("claimed %v, want %v", got.list(), ids)
	}
}

// TestLaneConcurrencyIsClusterWide: two nodes whose deliveries never end
// hold, together, the lane's concurrency and no more; a completion on one
// lets one more be claimed; the other lane is not affected.
func TestLaneConcurrencyIsClusterWide(t *testing.T) {
	url := pgtest.DB(t)
	lanes := []pgqueue.Lane{{Class: "transactional", Concurrency: 2}, {Class: "bulk", Concurrency: 3}}
	a := open(t, url, pgqueue.Options{Node: "a", Lanes: lanes})
	b := open(t, url, pgqueue.Options{Node: "b", Lanes: lanes})
	putN(t, a, 10, "bulk")
	putN(t, b, 10, "transactional")
	var sa, sb seen
	a.Subscribe(sa.add)
	b.Subscribe(sb.add)
	waitFor(t, "5 claims (2 transactional + 3 bulk)", 10*time.Second, func() bool { return sa.n()+sb.n() == 5 })
	time.Sleep(500 * time.Millisecond) // more claim rounds (each put woke both)
	if n := sa.n() + sb.n(); n != 5 {
		t.Fatalf("%d claims in the cluster, want 5", n)
	}
	held := append(sa.list(), sb.list()...)
	done := held[0]
	q := a
	if !contains(sa.list(), done) {
		q = b
	}
	if err := q.Deliverer().Done(context.Background(), done); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "one more claim after a completion", 10*time.Second, func() bool { return sa.n()+sb.n() == 6 })
	time.Sleep(300 * time.Millisecond)
	if n := sa.n() + sb.n(); n != 6 {
		t.Fatalf("%d claims after one completion, want 6", n)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// TestDeadNodesClaimsAreTakenOver: a node that stops beating (its
// connections gone, as when it is killed) keeps its claims until its lease
// ends; then another node takes the messages over.
func TestDeadNodesClaimsAreTakenOver(t *testing.T) {
	url := pgtest.DB(t)
	const lease = 1500 * time.Millisecond
	dying := open(t, url, pgqueue.Options{Node: "dying", Lease: lease})
	heir := open(t, url, pgqueue.Options{Node: "heir", Lease: lease, Admin: true})
	ids := putN(t, heir, 3, "transactional")
	var sd seen
	dying.Subscribe(sd.add)
	waitFor(t, "the dying node to claim the messages", 10*time.Second, func() bool { return sd.n() == 3 })
	dying.Halt() // dies: no heartbeat, claims left in the table
	died := time.Now()

	survivor := open(t, url, pgqueue.Options{Node: "survivor", Lease: lease})
	var ss seen
	survivor.Subscribe(ss.add)
	waitFor(t, "the survivor to take the dead node's claims over", 30*time.Second, func() bool { return ss.n() == 3 })
	if took := time.Since(died); took < lease {
		t.Fatalf("taken over %s after the death, before the lease (%s) ended", took, lease)
	}
	for _, id := range ids {
		if !contains(ss.list(), id) {
			t.Errorf("%s not taken over", id)
		}
	}
}

// TestLaneRateIsClusterWide: two nodes together claim no faster than the
// lane's rate (a token bucket in the database, burst = rate).
func TestLaneRateIsClusterWide(t *testing.T) {
	url := pgtest.DB(t)
	lanes := []pgqueue.Lane{{Class: "transactional", Concurrency: 100, Rate: 4}, {Class: "bulk", Concurrency: 1}}
	a := open(t, url, pgqueue.Options{Node: "a", Lanes: lanes})
	b := open(t, url, pgqueue.Options{Node: "b", Lanes: lanes})
	putN(t, a, 30, "transactional")
	start := time.Now()
	done := func(q *pgqueue.Queue) func(queue.Item) {
		return func(it queue.Item) { go q.Deliverer().Done(context.Background(), it.Envelope.ID) }
	}
	var claimed sync.WaitGroup
	var mu sync.Mutex
	n := 0
	claimed.Add(1)
	count := func(q *pgqueue.Queue) func(queue.Item) {
		d := done(q)
		return func(it queue.Item) {
			mu.Lock()
			n++
			mu.Unlock()
			d(it)
		}
	}
	a.Subscribe(count(a))
	b.Subscribe(count(b))
	time.Sleep(1500 * time.Millisecond)
	mu.Lock()
	got, took := n, time.Since(start)
	mu.Unlock()
	if limit := 4 + 4*took.Seconds() + 1; float64(got) > limit {
		t.Fatalf("%d claims in %s: over the lane's rate (4/s, burst 4: at most %.0f)", got, took, limit)
	}
	if got < 4 {
		t.Fatalf("only %d claims in %s", got, took)
	}
}
