package pgqueue_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/relay/deliver"
	"github.com/mjrelay/mjrelay/relay/lanes"
	"github.com/mjrelay/mjrelay/relay/pg/pgtest"
	"github.com/mjrelay/mjrelay/relay/pgqueue"
	"github.com/mjrelay/mjrelay/relay/queue"
)

// sink is an upstream that takes every message and counts them by id.
type sink struct {
	mu  sync.Mutex
	got map[string]int
}

func (s *sink) Name() string { return "smtp" }
func (s *sink) Close() error { return nil }
func (s *sink) Deliver(_ context.Context, m *mailjet.Message) mailjet.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.got == nil {
		s.got = map[string]int{}
	}
	s.got[m.ID]++
	return mailjet.Result{Upstream: "sink", Reply: mailjet.ParseReply("250 ok"), Rcpts: mailjet.AllRcpts(m, mailjet.Delivered, mailjet.ParseReply("250 ok"))}
}

func (s *sink) count() (ids, attempts int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.got {
		ids, attempts = ids+1, attempts+n
	}
	return ids, attempts
}

// gateOf is a node's sender check: known says whether it can run.
type gateOf struct {
	known atomic.Bool
	asked atomic.Int64
}

func (g *gateOf) Release(context.Context, queue.Envelope) error {
	g.asked.Add(1)
	if !g.known.Load() {
		return errors.New("the Mailjet account state is not known on this node")
	}
	return nil
}

// node runs a scheduler over q's claims until the test ends.
func node(t *testing.T, q *pgqueue.Queue, up mailjet.Target, g deliver.Gate) *deliver.Scheduler {
	s := deliver.New(q.Deliverer(), deliver.Options{Lanes: []lanes.Lane{
		{Class: lanes.Transactional, Targets: []mailjet.Target{up}, Concurrency: 4, Priority: -1},
		{Class: lanes.Bulk, Targets: []mailjet.Target{up}, Concurrency: 4, Priority: -1}},
		RetryMin: time.Hour, RetryMax: time.Hour, MaxLifetime: time.Hour, Gate: g, HoldRecheck: 20 * time.Millisecond})
	q.Subscribe(s.Enqueue)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

// TestHeldMailIsCheckedByANodeThatCan: held messages take no lane's
// claim; a node that cannot run their check (the account state unknown
// there) keeps none of them, so a node that can releases them all, and
// each is delivered once.
func TestHeldMailIsCheckedByANodeThatCan(t *testing.T) {
	url := pgtest.DB(t)
	a := open(t, url, pgqueue.Options{Node: "a"})
	b := open(t, url, pgqueue.Options{Node: "b"})
	for range 3 {
		env := &queue.Envelope{ID: a.NewID(), Received: time.Now(), From: "a@example.com", To: []string{"b@example.org"},
			Class: "transactional", Hold: "sender not checked yet: the Mailjet account state is not known"}
		if err := a.Put(context.Background(), env, []byte("Subject: held\r\n\r\nx\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	var upA, upB sink
	ga, gb := &gateOf{}, &gateOf{}
	sa := node(t, a, &upA, ga)
	waitFor(t, "node a to hold the 3 messages aside and check them", 10*time.Second, func() bool {
		return sa.Depths()["transactional"].Held == 3 && ga.asked.Load() >= 3
	})
	d, err := a.Depths(context.Background())
	if err != nil || d["transactional"].Held != 3 || d["transactional"].InFlight != 0 {
		t.Fatalf("cluster depths %+v, %v: want 3 held, none claimed", d, err)
	}

	gb.known.Store(true)
	node(t, b, &upB, gb)
	// Released by b; delivered by whichever node claims it then.
	waitFor(t, "the 3 messages released and delivered", 20*time.Second, func() bool {
		na, _ := upA.count()
		nb, _ := upB.count()
		return na+nb == 3
	})
	waitFor(t, "the queue empty", 10*time.Second, func() bool { return a.Stats().Messages == 0 })
	_, atta := upA.count()
	_, attb := upB.count()
	if atta+attb != 3 {
		t.Fatalf("%d attempts for 3 messages", atta+attb)
	}
	waitFor(t, "node a to forget them", 10*time.Second, func() bool { return sa.Depths()["transactional"].Held == 0 })
}

// TestInsertKeepsTheHold: messages brought in from elsewhere (a node's
// local spool, an embedded queue by `mjrelay migrate`) keep their hold and
// its release: one still held waits for its check, one released is
// claimed in its lane.
func TestInsertKeepsTheHold(t *testing.T) {
	url := pgtest.DB(t)
	q := open(t, url, pgqueue.Options{Node: "a"})
	var ms []pgqueue.Moved
	for _, released := range []bool{false, true} {
		env := queue.Envelope{ID: q.NewID(), Received: time.Now(), From: "a@example.com", To: []string{"b@example.org"},
			Class: "transactional", Hold: "sender not checked yet: the Mailjet account state is not known"}
		ms = append(ms, pgqueue.Moved{Item: queue.Item{Envelope: env, State: queue.State{ID: env.ID, Released: released}},
			Body: []byte("Subject: moved\r\n\r\nx\r\n")})
	}
	if n, err := q.Insert(context.Background(), ms); err != nil || n != 2 {
		t.Fatalf("Insert: %d, %v", n, err)
	}
	for i, m := range ms {
		it, err := q.Get(m.Item.Envelope.ID)
		if err != nil || (it.Held() == "") != (i == 1) || it.State.Released != (i == 1) {
			t.Fatalf("moved message %d: held %q, released %v, %v", i, it.Held(), it.State.Released, err)
		}
	}
	d, err := q.Depths(context.Background())
	if err != nil || d["transactional"].Held != 1 || d["transactional"].Ready != 1 {
		t.Fatalf("depths %+v, %v: want 1 held and 1 ready", d, err)
	}
	var got seen
	q.Subscribe(got.add)
	waitFor(t, "the released one claimed and the held one fed once", 10*time.Second, func() bool { return got.n() == 2 })
}
