package deliver

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/relay/lanes"
	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/spool"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// gate holds every message until open; then it refuses the senders in
// refuse and lets the others go.
type gate struct {
	mu     sync.Mutex
	open   bool
	refuse map[string]mailjet.Reply
	asked  int
}

type refusal struct{ r mailjet.Reply }

func (r refusal) Error() string        { return r.r.String() }
func (r refusal) Reply() mailjet.Reply { return r.r }

func (g *gate) Release(_ context.Context, env queue.Envelope) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.asked++
	switch r, ok := g.refuse[env.From]; {
	case !g.open:
		return errors.New("still unknown")
	case ok:
		return refusal{r}
	}
	return nil
}

func (g *gate) set(open bool) { g.mu.Lock(); g.open = open; g.mu.Unlock() }
func (g *gate) calls() int    { g.mu.Lock(); defer g.mu.Unlock(); return g.asked }

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func putHeld(t *testing.T, sp *spool.Spool, from string) string {
	env := &queue.Envelope{ID: sp.NewID(), Received: time.Now(), From: from, To: []string{"c@x.org"},
		Hold: "sender not checked yet: the Mailjet account state is not known"}
	if err := sp.Put(context.Background(), env, []byte("Subject: x\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	return env.ID
}

// TestHeldMessagesWaitForTheirCheck: held messages are not attempted while
// their check cannot run (the others go); then a released one is
// delivered (its release survives a deferral and a restart) and a refused
// one fails for good with the refusal's reply as its reason.
func TestHeldMessagesWaitForTheirCheck(t *testing.T) {
	dir := t.TempDir()
	sp, err := spool.Open(dir, spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bad := mailjet.Reply{Code: 550, Enhanced: "5.7.1", Text: "From address x@unverified.example refused: it is not a sender of the Mailjet account."}
	g := &gate{refuse: map[string]mailjet.Reply{"bounce@unverified.example": bad}}
	target := &scripted{answers: []map[string]mailjet.Status{{}, {"c@x.org": mailjet.TempFail}}}
	mem := &trafficlog.Memory{}
	s := New(sp, Options{Lanes: []lanes.Lane{{Class: lanes.Transactional, Targets: []mailjet.Target{target}, Concurrency: 2}},
		RetryMin: time.Hour, RetryMax: time.Hour, MaxLifetime: time.Hour, Traffic: mem, Gate: g, HoldRecheck: 10 * time.Millisecond})
	sp.Subscribe(s.Enqueue)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	defer stop()

	ok := putHeld(t, sp, "bounce@example.com")
	refused := putHeld(t, sp, "bounce@unverified.example")
	put(t, sp, time.Now(), "free@x.org")
	waitUntil(t, "the message that is not held delivered, and the gate asked again", func() bool {
		return len(mem.Events(trafficlog.Delivered)) == 1 && g.calls() >= 3
	})
	target.mu.Lock()
	attempts := target.calls
	target.mu.Unlock()
	if d := s.Depths()["transactional"]; d.Held != 2 || attempts != 1 {
		t.Fatalf("depth %+v after %d attempts: want the 2 held messages aside, unattempted", d, attempts)
	}

	g.set(true)
	s.RetryNow("") // check now rather than at the next round
	waitUntil(t, "the refused one failed and the released one attempted", func() bool {
		return len(mem.Events(trafficlog.Failed)) == 1 && len(mem.Events(trafficlog.Deferred)) == 1
	})
	f := mem.Events(trafficlog.Failed)[0]
	if f.ID != refused || f.Reply != bad || f.Reason != bad.Text || f.Attempt != 0 {
		t.Fatalf("failed event %+v", f)
	}
	if _, err := sp.Get(refused); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("the refused message is still queued: %v", err)
	}
	it, err := sp.Get(ok)
	if err != nil || !it.State.Released || it.Held() != "" || it.State.Attempts != 1 {
		t.Fatalf("released then deferred: %+v, %v", it.State, err)
	}

	// After a restart the released message is not held again.
	stop()
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	g.set(false)
	if sp, err = spool.Open(dir, spool.Options{}); err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	s = New(sp, Options{Lanes: []lanes.Lane{{Class: lanes.Transactional, Targets: []mailjet.Target{target}}},
		RetryMin: time.Hour, RetryMax: time.Hour, MaxLifetime: time.Hour, Traffic: mem, Gate: g})
	sp.Subscribe(s.Enqueue)
	if d := s.Depths()["transactional"]; d.Held != 0 || d.Deferred != 1 {
		t.Fatalf("after a restart: %+v", d)
	}
}

// TestDeleteHeld: an administrator can delete a held message.
func TestDeleteHeld(t *testing.T) {
	sp, err := spool.Open(t.TempDir(), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	s := New(sp, Options{Lanes: []lanes.Lane{{Class: lanes.Transactional, Targets: []mailjet.Target{mailjet.Sandbox{}}}},
		RetryMin: time.Minute, RetryMax: time.Hour, MaxLifetime: time.Hour, Gate: &gate{}})
	sp.Subscribe(s.Enqueue)
	id := putHeld(t, sp, "bounce@example.com")
	if d := s.Depths()["transactional"]; d.Held != 1 {
		t.Fatalf("depth %+v", d)
	}
	if err := s.Delete(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if d := s.Depths()["transactional"]; d.Held != 0 || sp.Stats().Messages != 0 {
		t.Fatalf("after Delete: depth %+v, %d queued", d, sp.Stats().Messages)
	}
}

// TestHeldTooLongFails: a message held longer than queue.max_lifetime
// (the account state never became known) fails, as one retried that long
// does; a younger one stays held.
func TestHeldTooLongFails(t *testing.T) {
	sp, err := spool.Open(t.TempDir(), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	mem := &trafficlog.Memory{}
	s := New(sp, Options{Lanes: []lanes.Lane{{Class: lanes.Transactional, Targets: []mailjet.Target{mailjet.Sandbox{}}}},
		RetryMin: time.Minute, RetryMax: time.Hour, MaxLifetime: time.Hour, Traffic: mem, Gate: &gate{}, HoldRecheck: 10 * time.Millisecond})
	sp.Subscribe(s.Enqueue)
	old := &queue.Envelope{ID: sp.NewID(), Received: time.Now().Add(-2 * time.Hour), From: "bounce@example.com", To: []string{"c@x.org"}, Hold: "why"}
	if err := sp.Put(context.Background(), old, []byte("Subject: x\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	young := putHeld(t, sp, "bounce@example.com")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitUntil(t, "the old held message failed", func() bool { return len(mem.Events(trafficlog.Failed)) == 1 })
	f := mem.Events(trafficlog.Failed)[0]
	if f.ID != old.ID || !strings.Contains(f.Reason, "gave up after 1h0m0s held (queue.max_lifetime): why") {
		t.Fatalf("failed event %+v", f)
	}
	if _, err := sp.Get(young); err != nil || s.Depths()["transactional"].Held != 1 {
		t.Fatalf("the young one: %v, depth %+v", err, s.Depths())
	}
}

// TestHeldRefusalReportedToFinal: a held message refused once its check
// runs is handed to Options.Final (the Odoo feedback) with its bytes before
// it leaves the queue; while Final cannot keep it, it stays held.
func TestHeldRefusalReportedToFinal(t *testing.T) {
	sp, err := spool.Open(t.TempDir(), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	bad := mailjet.Reply{Code: 550, Enhanced: "5.7.1", Text: "From address refused"}
	var mu sync.Mutex
	var reported []trafficlog.Event
	broken := true
	mem := &trafficlog.Memory{}
	s := New(sp, Options{Lanes: []lanes.Lane{{Class: lanes.Transactional, Targets: []mailjet.Target{mailjet.Sandbox{}}}},
		RetryMin: time.Minute, RetryMax: time.Hour, MaxLifetime: time.Hour, Traffic: mem, HoldRecheck: 10 * time.Millisecond,
		Gate: &gate{open: true, refuse: map[string]mailjet.Reply{"bounce@example.com": bad}},
		Final: func(_ context.Context, ev trafficlog.Event, body []byte) error {
			mu.Lock()
			defer mu.Unlock()
			if broken {
				return errors.New("outbox unavailable")
			}
			if !strings.HasPrefix(string(body), "Subject: x") {
				t.Errorf("Final got body %q", body)
			}
			reported = append(reported, ev)
			return nil
		}})
	sp.Subscribe(s.Enqueue)
	id := putHeld(t, sp, "bounce@example.com")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	g := s.opts.Gate.(*gate)
	waitUntil(t, "a few rounds with the outbox broken", func() bool { return g.calls() >= 3 })
	if _, err := sp.Get(id); err != nil || s.Depths()["transactional"].Held != 1 || len(mem.Events(trafficlog.Failed)) != 0 {
		t.Fatalf("with Final failing: %v, depth %+v, %d failed events", err, s.Depths(), len(mem.Events(trafficlog.Failed)))
	}
	mu.Lock()
	broken = false
	mu.Unlock()
	waitUntil(t, "the refusal reported and recorded", func() bool { return len(mem.Events(trafficlog.Failed)) == 1 })
	mu.Lock()
	defer mu.Unlock()
	if len(reported) != 1 || reported[0].ID != id || reported[0].Reply != bad || reported[0].Reason != bad.Text {
		t.Fatalf("reported %+v", reported)
	}
	if _, err := sp.Get(id); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("still queued: %v", err)
	}
}
