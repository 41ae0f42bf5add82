package deliver

import (
	"context"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/relay/lanes"
)

// held delivers once its gate opens; it says when an attempt began.
type held struct {
	scripted
	began chan struct{}
	gate  chan struct{}
}

func (h *held) Deliver(ctx context.Context, m *mailjet.Message) mailjet.Result {
	h.began <- struct{}{}
	<-h.gate
	return h.scripted.Deliver(ctx, m)
}

// TestSetLanes: a reload's new transports take the lane's next messages;
// the attempt in progress ends on the transport it started with, and the
// former transports are reported unused only once it has.
func TestSetLanes(t *testing.T) {
	a := &held{began: make(chan struct{}, 1), gate: make(chan struct{})}
	sp, s, _ := setup(t, a, time.Hour)
	put(t, sp, time.Now(), "first@x.org")
	<-a.began

	b := &scripted{}
	retired := s.SetLanes([]lanes.Lane{{Class: lanes.Transactional, Targets: []mailjet.Target{b}, Concurrency: 4, Rate: 1000}})
	put(t, sp, time.Now(), "second@x.org")
	deadline := time.Now().Add(5 * time.Second)
	for {
		b.mu.Lock()
		n := len(b.seen)
		b.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the message after SetLanes did not go through the new transport")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case <-retired:
		t.Fatal("the former transports were reported unused while an attempt used them")
	default:
	}
	close(a.gate)
	<-retired
	waitEmpty(t, sp)
	if len(a.seen) != 1 || a.seen[0][0] != "first@x.org" || b.seen[0][0] != "second@x.org" {
		t.Errorf("former transport saw %v, new one %v", a.seen, b.seen)
	}
	if d := s.Depths()["transactional"]; d.InFlight != 0 {
		t.Errorf("depths after: %+v", d)
	}
}

// TestSetRetry: the backoff follows the new bounds.
func TestSetRetry(t *testing.T) {
	s := New(nil, Options{Lanes: []lanes.Lane{{Class: lanes.Transactional, Targets: []mailjet.Target{mailjet.Sandbox{}}}}, RetryMin: time.Minute, RetryMax: time.Hour})
	s.SetRetry(Retry{RetryMin: time.Second, RetryMax: 2 * time.Second, MaxLifetime: time.Hour})
	for i := 1; i < 10; i++ {
		if d := s.backoff(i); d < time.Second || d > 2*time.Second {
			t.Fatalf("backoff(%d) = %v after SetRetry(1s, 2s)", i, d)
		}
	}
}
