package deliver

import (
	"context"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/relay/lanes"
	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/spool"
)

// gated delivers one message each time release gets a value.
type gated struct{ release chan struct{} }

func (g *gated) Name() string { return "smtp" }
func (g *gated) Close() error { return nil }
func (g *gated) Deliver(ctx context.Context, m *mailjet.Message) mailjet.Result {
	select {
	case <-g.release:
	case <-ctx.Done():
	}
	res := mailjet.Result{Upstream: "test"}
	for _, r := range m.Rcpts {
		res.Rcpts = append(res.Rcpts, mailjet.RcptResult{Rcpt: r, Status: mailjet.Delivered, Reply: mailjet.ParseReply("250 ok")})
	}
	return res
}

// flowSetup starts a scheduler whose bulk lane (one delivery at a time,
// held by the gate) paces intake above 2 ready messages, and queues 4 bulk
// messages: one in flight, 3 ready.
func flowSetup(t *testing.T, delay time.Duration) (*Scheduler, *gated) {
	g := &gated{release: make(chan struct{})}
	sp, err := spool.Open(t.TempDir(), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := New(sp, Options{Lanes: []lanes.Lane{
		{Class: lanes.Transactional, Targets: []mailjet.Target{mailjet.Sandbox{}}, Concurrency: 1, FlowDelay: delay},
		{Class: lanes.Bulk, Targets: []mailjet.Target{g}, Concurrency: 1, FlowBacklog: 2, FlowDelay: delay},
	}, RetryMin: time.Minute, RetryMax: time.Hour, MaxLifetime: time.Hour})
	sp.Subscribe(s.Enqueue)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { close(g.release); cancel(); <-done; sp.Close() })
	for i := 0; i < 4; i++ {
		env := &queue.Envelope{ID: sp.NewID(), Received: time.Now(), From: "a@example.com", To: []string{"b@x.org"}, Class: "bulk"}
		if err := sp.Put(context.Background(), env, []byte("Subject: x\r\n\r\nx\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for d := s.Depths()["bulk"]; d.Ready != 3 || d.InFlight != 1; d = s.Depths()["bulk"] {
		if time.Now().After(deadline) {
			t.Fatalf("bulk depth %+v, want 3 ready and 1 in flight", d)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return s, g
}

func TestPace(t *testing.T) {
	t.Run("a lane within its backlog is not paced", func(t *testing.T) {
		s, _ := flowSetup(t, time.Hour)
		if d := s.Pace(context.Background(), "transactional"); d != 0 {
			t.Fatalf("transactional waited %v while only bulk is behind", d)
		}
	})
	t.Run("a lane behind waits for one of its deliveries", func(t *testing.T) {
		s, g := flowSetup(t, time.Hour)
		paced := make(chan time.Duration)
		go func() { paced <- s.Pace(context.Background(), "bulk") }()
		select {
		case d := <-paced:
			t.Fatalf("bulk intake went on after %v with 3 ready over a backlog of 2 and no delivery", d)
		case <-time.After(100 * time.Millisecond):
		}
		g.release <- struct{}{} // one bulk delivery ends
		select {
		case d := <-paced:
			if d < 100*time.Millisecond {
				t.Fatalf("paced %v", d)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a delivery ended, but intake is still held back")
		}
	})
	t.Run("the wait is bounded by flow_delay", func(t *testing.T) {
		s, _ := flowSetup(t, 50*time.Millisecond)
		if d := s.Pace(context.Background(), "bulk"); d < 50*time.Millisecond {
			t.Fatalf("paced %v, want flow_delay (50ms) with no delivery meanwhile", d)
		}
	})
	t.Run("and by its context", func(t *testing.T) {
		s, _ := flowSetup(t, time.Hour)
		ctx, cancel := context.WithCancel(context.Background())
		go func() { time.Sleep(20 * time.Millisecond); cancel() }()
		if d := s.Pace(ctx, "bulk"); d > time.Minute {
			t.Fatalf("paced %v after the context ended", d)
		}
	})
}
