package queue_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/queue/queuetest"
	"github.com/mjrelay/mjrelay/relay/spool"
	"github.com/mjrelay/mjrelay/relay/spool/spooltest"
)

// switched is a Switch over a spool, closed with it (for the suite).
type switched struct {
	*queue.Switch
	sp *spool.Spool
}

func (s switched) Close() error { return s.sp.Close() }

// TestSwitchConformance: a Switch with a backend is that backend: it
// passes the queue suite over the spool.
func TestSwitchConformance(t *testing.T) {
	queuetest.Run(t, queuetest.Harness{
		Place: func(t *testing.T) string { return t.TempDir() },
		Open: func(t *testing.T, dir string, l queuetest.Limits) queue.Queue {
			sp := spooltest.Open(t, dir, spool.Options{MaxMessages: l.MaxMessages, MaxBytes: l.MaxBytes})
			return switched{queue.NewSwitch(sp, time.Second), sp}
		},
		Crash: func(t *testing.T, dir string) string { t.Skip("crashes are the backend's (spool) suite's"); return "" },
	})
}

func envelope(q queue.Queue) *queue.Envelope {
	return &queue.Envelope{ID: q.NewID(), Received: time.Now(), From: "a@acme.example", To: []string{"b@client.example"}}
}

var body = []byte("Subject: x\r\n\r\nx\r\n")

// TestSwitchWaitsForABackend: while there is none (the queue being handed
// over), Put waits and goes into the backend once there is one; with none
// within the bound, Put and Admit fail with ErrUnavailable.
func TestSwitchWaitsForABackend(t *testing.T) {
	sp := spooltest.Open(t, "", spool.Options{})
	sw := queue.NewSwitch(nil, time.Minute)
	env := envelope(sp)
	done := make(chan error, 1)
	go func() { done <- sw.Put(context.Background(), env, body) }()
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Put returned (%v) with no backend", err)
	default:
	}
	sw.Set(sp)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := sp.Get(env.ID); err != nil {
		t.Fatalf("the message is not in the backend: %v", err)
	}

	none := queue.NewSwitch(nil, 100*time.Millisecond)
	if err := none.Put(context.Background(), envelope(sp), body); !errors.Is(err, queue.ErrUnavailable) {
		t.Errorf("Put with no backend: %v, want ErrUnavailable", err)
	}
	if err := none.Admit(10); !errors.Is(err, queue.ErrUnavailable) {
		t.Errorf("Admit with no backend: %v, want ErrUnavailable", err)
	}
	if _, err := none.Get("x"); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Get with no backend: %v, want ErrClosed", err)
	}
}

// gated holds its Puts until the gate opens, then stores them.
type gated struct {
	*spool.Spool
	entered chan struct{}
	gate    chan struct{}
}

func (g gated) Put(ctx context.Context, env *queue.Envelope, parts ...[]byte) error {
	g.entered <- struct{}{}
	<-g.gate
	return g.Spool.Put(ctx, env, parts...)
}

// TestSetWaitsForCallsInProgress: Set returns only once the Put in
// progress on the former backend has returned, so the former backend can
// be closed safely; the Put went to the former backend.
func TestSetWaitsForCallsInProgress(t *testing.T) {
	old := gated{spooltest.Open(t, "", spool.Options{}), make(chan struct{}), make(chan struct{})}
	next := spooltest.Open(t, "", spool.Options{})
	sw := queue.NewSwitch(old, time.Minute)
	env := envelope(old)
	put := make(chan error, 1)
	go func() { put <- sw.Put(context.Background(), env, body) }()
	<-old.entered
	set := make(chan struct{})
	go func() { sw.Set(next); close(set) }()
	time.Sleep(50 * time.Millisecond)
	select {
	case <-set:
		t.Fatal("Set returned while a Put was in progress on the former backend")
	default:
	}
	close(old.gate)
	<-set
	if err := <-put; err != nil {
		t.Fatal(err)
	}
	if _, err := old.Get(env.ID); err != nil {
		t.Errorf("the Put in progress did not go to the former backend: %v", err)
	}
	// New calls go to the new backend.
	env2 := envelope(next)
	if err := sw.Put(context.Background(), env2, body); err != nil {
		t.Fatal(err)
	}
	if _, err := next.Get(env2.ID); err != nil {
		t.Errorf("a Put after Set did not go to the new backend: %v", err)
	}
}

// vanishing stands for a process that goes away during a Put: after
// storing the message into q (stored) or before.
type vanishing struct {
	queue.Queue
	stored  bool
	entered chan struct{}
}

func (v vanishing) Put(ctx context.Context, env *queue.Envelope, parts ...[]byte) error {
	if v.stored {
		if err := v.Queue.Put(ctx, env, parts...); err != nil {
			return err
		}
	}
	v.entered <- struct{}{}
	return queue.ErrUnavailable
}

// TestPutMadeAgainOnTheNextBackend: a Put whose backend went away is made
// again on the next backend, and not when that backend already has the
// message: it is stored once either way.
func TestPutMadeAgainOnTheNextBackend(t *testing.T) {
	for _, stored := range []bool{false, true} {
		sp := spooltest.Open(t, "", spool.Options{})
		v := vanishing{sp, stored, make(chan struct{}, 1)}
		sw := queue.NewSwitch(v, time.Minute)
		env := envelope(sp)
		put := make(chan error, 1)
		go func() { put <- sw.Put(context.Background(), env, body) }()
		<-v.entered
		sw.Set(sp)
		if err := <-put; err != nil {
			t.Fatalf("stored=%v: %v", stored, err)
		}
		if n := sp.Stats().Messages; n != 1 {
			t.Errorf("stored=%v: %d messages in the queue, want 1", stored, n)
		}
	}
}

// TestAdmitAskedAgainOfTheNextBackend: an Admit whose backend went away
// is asked of the next one, not answered with the error.
func TestAdmitAskedAgainOfTheNextBackend(t *testing.T) {
	sp := spooltest.Open(t, "", spool.Options{})
	gone := unreachable{sp, make(chan struct{}, 1)}
	sw := queue.NewSwitch(gone, time.Minute)
	admit := make(chan error, 1)
	go func() { admit <- sw.Admit(10) }()
	<-gone.entered
	sw.Set(sp)
	if err := <-admit; err != nil {
		t.Fatalf("Admit after the backend went away: %v", err)
	}
}

// unreachable is a backend whose process went away.
type unreachable struct {
	queue.Queue
	entered chan struct{}
}

func (u unreachable) Admit(int64) error { u.entered <- struct{}{}; return queue.ErrUnavailable }
