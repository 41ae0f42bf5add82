package deliver

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/relay/lanes"
	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/spool"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

func TestBackoff(t *testing.T) {
	s := New(nil, Options{Lanes: []lanes.Lane{{Class: lanes.Transactional, Targets: []mailjet.Target{mailjet.Sandbox{}}}}, RetryMin: time.Minute, RetryMax: time.Hour})
	tests := []struct {
		attempt  int
		lo, high time.Duration
	}{
		{1, time.Minute, 72 * time.Second},
		{2, 96 * time.Second, 144 * time.Second},
		{4, 384 * time.Second, 576 * time.Second},
		{7, 48 * time.Minute, time.Hour},
		{40, 48 * time.Minute, time.Hour},
	}
	for _, tc := range tests {
		for i := 0; i < 200; i++ {
			if d := s.backoff(tc.attempt); d < tc.lo || d > tc.high {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", tc.attempt, d, tc.lo, tc.high)
			}
		}
	}
}

// scripted answers each recipient from a per-attempt script.
type scripted struct {
	mu      sync.Mutex
	calls   int
	answers []map[string]mailjet.Status // per call; missing recipients are delivered
	seen    [][]string
}

func (s *scripted) Name() string { return "smtp" }
func (s *scripted) Close() error { return nil }
func (s *scripted) Deliver(_ context.Context, m *mailjet.Message) mailjet.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ans map[string]mailjet.Status
	if s.calls < len(s.answers) {
		ans = s.answers[s.calls]
	}
	s.calls++
	s.seen = append(s.seen, append([]string(nil), m.Rcpts...))
	res := mailjet.Result{Upstream: "test", Reply: mailjet.ParseReply("250 ok")}
	for _, r := range m.Rcpts {
		st := ans[r]
		reply := map[mailjet.Status]string{mailjet.Delivered: "250 ok", mailjet.TempFail: "451 later", mailjet.PermFail: "550 no"}[st]
		res.Rcpts = append(res.Rcpts, mailjet.RcptResult{Rcpt: r, Status: st, Reply: mailjet.ParseReply(reply)})
	}
	return res
}

func setup(t *testing.T, target mailjet.Target, lifetime time.Duration) (*spool.Spool, *Scheduler, *trafficlog.Memory) {
	sp, err := spool.Open(t.TempDir(), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mem := &trafficlog.Memory{}
	s := New(sp, Options{Lanes: []lanes.Lane{{Class: lanes.Transactional, Targets: []mailjet.Target{target}, Concurrency: 2, Priority: -1}},
		RetryMin: 20 * time.Millisecond, RetryMax: 40 * time.Millisecond, MaxLifetime: lifetime, Traffic: mem})
	sp.Subscribe(s.Enqueue)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; sp.Close() })
	return sp, s, mem
}

func put(t *testing.T, sp *spool.Spool, received time.Time, rcpts ...string) string {
	env := &queue.Envelope{ID: sp.NewID(), Received: received, From: "a@example.com", To: rcpts}
	if err := sp.Put(context.Background(), env, []byte("Subject: x\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	return env.ID
}

func waitEmpty(t *testing.T, sp *spool.Spool) {
	deadline := time.Now().Add(5 * time.Second)
	for sp.Stats().Messages > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("queue still holds %+v", sp.List())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestOnlyDeferredRecipientsAreRetried(t *testing.T) {
	target := &scripted{answers: []map[string]mailjet.Status{
		{"b@x.org": mailjet.TempFail, "c@x.org": mailjet.PermFail},
		{"b@x.org": mailjet.TempFail},
	}}
	sp, _, mem := setup(t, target, time.Hour)
	put(t, sp, time.Now(), "a@x.org", "b@x.org", "c@x.org")
	waitEmpty(t, sp)
	if len(target.seen) != 3 || len(target.seen[1]) != 1 || target.seen[1][0] != "b@x.org" || len(target.seen[2]) != 1 {
		t.Fatalf("attempts saw %v", target.seen)
	}
	counts := map[trafficlog.Kind]int{}
	for _, e := range mem.Events("") {
		counts[e.Event]++
	}
	want := map[trafficlog.Kind]int{trafficlog.Attempt: 3, trafficlog.Delivered: 2, trafficlog.Failed: 1, trafficlog.Deferred: 2}
	for k, v := range want {
		if counts[k] != v {
			t.Errorf("%d %s events, want %d (all: %v)", counts[k], k, v, counts)
		}
	}
}

func TestExpiredMessageFails(t *testing.T) {
	target := &scripted{answers: []map[string]mailjet.Status{{"a@x.org": mailjet.TempFail}}}
	sp, _, mem := setup(t, target, time.Hour)
	put(t, sp, time.Now().Add(-2*time.Hour), "a@x.org")
	waitEmpty(t, sp)
	f := mem.Events(trafficlog.Failed)
	if len(f) != 1 || target.calls != 1 {
		t.Fatalf("failed events %+v after %d attempts", f, target.calls)
	}
}

func TestRetryNowAndDelete(t *testing.T) {
	target := &scripted{answers: []map[string]mailjet.Status{{"a@x.org": mailjet.TempFail}, {"a@x.org": mailjet.TempFail}}}
	sp, s, mem := setup(t, target, time.Hour)
	s.opts.RetryMin, s.opts.RetryMax = time.Hour, time.Hour
	id := put(t, sp, time.Now(), "a@x.org")
	deadline := time.Now().Add(5 * time.Second)
	// The deferred event is recorded just before the message is put back
	// in its lane: wait for both.
	for (len(mem.Events(trafficlog.Deferred)) == 0 || s.Depths()["transactional"].Deferred == 0) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if d := s.Depths()["transactional"]; d.Deferred != 1 {
		t.Fatalf("depth = %+v", d)
	}
	if n := s.RetryNow(""); n != 1 {
		t.Fatalf("RetryNow = %d", n)
	}
	for len(mem.Events(trafficlog.Deferred)) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if target.calls != 2 {
		t.Fatalf("%d attempts after RetryNow", target.calls)
	}
	if err := s.Delete(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if sp.Stats().Messages != 0 || len(mem.Events(trafficlog.Deleted)) != 1 {
		t.Fatalf("after Delete: %+v", sp.Stats())
	}
}
