package account

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gatedFetcher blocks every Fetch until release is closed.
type gatedFetcher struct {
	calls   atomic.Int32
	started chan struct{}
	release chan struct{}
	err     error
}

func (g *gatedFetcher) Fetch(ctx context.Context) (*Snapshot, error) {
	g.calls.Add(1)
	select {
	case g.started <- struct{}{}:
	default:
	}
	<-g.release
	if g.err != nil {
		return nil, g.err
	}
	return NewSnapshot(time.Time{}, "k", []Sender{{Email: "a@example.com", Status: StatusActive}}, nil), nil
}

func TestConcurrentCallersShareOneRefresh(t *testing.T) {
	for _, onDemand := range []bool{false, true} {
		g := &gatedFetcher{started: make(chan struct{}, 1), release: make(chan struct{})}
		c := NewCache(g, CacheOptions{})
		const n = 20
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if onDemand {
					if st := c.RefreshOnDemand(context.Background()); !st.Known() {
						errs <- errors.New("on-demand caller got no snapshot")
					}
					return
				}
				_, err := c.Refresh(context.Background())
				errs <- err
			}()
		}
		<-g.started
		// Wait until every caller waits on the flight (only on-demand callers
		// beyond the first could also have been turned away by the limiter,
		// but the flight exists, so they join it).
		for {
			c.mu.Lock()
			w := 0
			if c.flight != nil {
				w = c.flight.waiters
			}
			c.mu.Unlock()
			if w == n {
				break
			}
			runtime.Gosched()
		}
		close(g.release)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got := g.calls.Load(); got != 1 {
			t.Fatalf("onDemand=%v: %d fetches for %d concurrent callers, want 1", onDemand, got, n)
		}
	}
}

// A caller that gives up does not cancel the refresh others wait for.
func TestCallerCancelDoesNotFailTheFlight(t *testing.T) {
	g := &gatedFetcher{started: make(chan struct{}, 1), release: make(chan struct{})}
	c := NewCache(g, CacheOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { _, err := c.Refresh(ctx); done <- err }()
	<-g.started
	other := make(chan error)
	go func() { _, err := c.Refresh(context.Background()); other <- err }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled caller: %v", err)
	}
	close(g.release)
	if err := <-other; err != nil {
		t.Fatalf("other caller: %v", err)
	}
	if !c.State().Known() {
		t.Fatal("refresh result lost")
	}
}

// countingFetcher signals each call and fails while fail is set.
type countingFetcher struct {
	calls chan struct{}
	fail  atomic.Bool
}

func (f *countingFetcher) Fetch(context.Context) (*Snapshot, error) {
	f.calls <- struct{}{}
	if f.fail.Load() {
		return nil, errors.New("down")
	}
	return NewSnapshot(time.Time{}, "k", nil, nil), nil
}

func TestRunRefreshesUntilCanceled(t *testing.T) {
	f := &countingFetcher{calls: make(chan struct{})}
	c := NewCache(f, CacheOptions{Refresh: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	for range 3 {
		<-f.calls
	}
	cancel()
	// Drain a refresh that may be starting while Run stops.
	go func() {
		for range f.calls {
		}
	}()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !c.State().Known() {
		t.Fatal("no snapshot after scheduled refreshes")
	}
}

func TestNextDelayBacksOffAfterFailures(t *testing.T) {
	c := NewCache(&countingFetcher{}, CacheOptions{Refresh: 5 * time.Minute})
	tests := []struct {
		failures int
		want     time.Duration
	}{
		{0, 5 * time.Minute},
		{1, 15 * time.Second},
		{2, 30 * time.Second},
		{3, time.Minute},
		{5, 4 * time.Minute},
		{6, 5 * time.Minute},
		{50, 5 * time.Minute},
	}
	for _, tt := range tests {
		c.failures = tt.failures
		if got := c.nextDelay(); got != tt.want {
			t.Errorf("%d failures: %v, want %v", tt.failures, got, tt.want)
		}
	}
}
