package supervise_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/supervise"
)

// trace records what the components do, in order.
type trace struct {
	mu  sync.Mutex
	log []string
}

func (tr *trace) add(s string) { tr.mu.Lock(); tr.log = append(tr.log, s); tr.mu.Unlock() }

func (tr *trace) get() []string { tr.mu.Lock(); defer tr.mu.Unlock(); return slices.Clone(tr.log) }

// component records its start and its stop: by Stop, or with run, when
// Run (which serves until its ctx is cancelled) returns.
func (tr *trace) component(name string, run bool) supervise.Component {
	c := supervise.Component{Name: name, Start: func(context.Context) error { tr.add("start " + name); return nil }}
	if run {
		c.Run = func(ctx context.Context) error { <-ctx.Done(); tr.add("ran " + name); return nil }
	} else {
		c.Stop = func(context.Context) error { tr.add("stop " + name); return nil }
	}
	return c
}

func TestStartStopOrder(t *testing.T) {
	tr := &trace{}
	g := supervise.New(nil)
	ctx := context.Background()
	if err := g.Start(ctx, tr.component("a", false), tr.component("b", true)); err != nil {
		t.Fatal(err)
	}
	// A server: Stop closes it, which ends Run; the next component stops
	// once Run has returned.
	closed := make(chan struct{})
	srv := supervise.Component{Name: "http", Run: func(context.Context) error { <-closed; tr.add("served"); return nil },
		Stop: func(context.Context) error { tr.add("close http"); close(closed); return nil }}
	if err := g.Start(ctx, srv, tr.component("c", false)); err != nil {
		t.Fatal(err)
	}
	if err := g.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"start a", "start b", "start c", "stop c", "close http", "served", "ran b", "stop a"}
	if got := tr.get(); !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if err := g.Stop(ctx); err != nil || len(tr.get()) != len(want) {
		t.Errorf("a second Stop: %v, %q", err, tr.get())
	}
	if g.Err() != nil {
		t.Errorf("Err = %v after a clean stop", g.Err())
	}
}

func TestFailedStartStopsWhatStarted(t *testing.T) {
	tr := &trace{}
	g := supervise.New(nil)
	ctx := context.Background()
	if err := g.Start(ctx, tr.component("a", false)); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("address in use")
	bad := supervise.Component{Name: "bad", Start: func(context.Context) error { tr.add("start bad"); return boom },
		Stop: func(context.Context) error { tr.add("stop bad"); return nil }}
	err := g.Start(ctx, tr.component("b", true), bad, tr.component("never", false))
	if err != boom {
		t.Fatalf("Start = %v, want the component's error as is", err)
	}
	want := []string{"start a", "start b", "start bad", "ran b", "stop a"}
	if got := tr.get(); !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestStopErrorsNamed(t *testing.T) {
	g := supervise.New(nil)
	ctx := context.Background()
	err := g.Start(ctx,
		supervise.Component{Name: "queue", Stop: func(context.Context) error { return errors.New("sync failed") }},
		supervise.Component{Name: "smtp", Stop: func(context.Context) error { return context.DeadlineExceeded }})
	if err != nil {
		t.Fatal(err)
	}
	err = g.Stop(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "queue: sync failed") ||
		!strings.Contains(err.Error(), "smtp: ") {
		t.Errorf("Stop = %v", err)
	}
}

// TestRunFailureReported: a component whose Run returns while it should
// run is logged and reported; the others keep running.
func TestRunFailureReported(t *testing.T) {
	boom := errors.New("accept: too many open files")
	for _, tc := range []struct {
		name string
		run  func(context.Context) error
		want string
	}{
		{"error", func(context.Context) error { return boom }, "http: accept: too many open files"},
		{"returns early", func(context.Context) error { return nil }, "http: stopped by itself"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &trace{}
			// The failure is logged before it is reported: logged is read
			// once Failed is closed.
			var logged strings.Builder
			g := supervise.New(slog.New(slog.NewTextHandler(&logged, nil)))
			ctx := context.Background()
			if err := g.Start(ctx, tr.component("a", true), supervise.Component{Name: "http", Run: tc.run}); err != nil {
				t.Fatal(err)
			}
			select {
			case <-g.Failed():
			case <-time.After(time.Minute):
				t.Fatal("no failure reported")
			}
			if err := g.Err(); err == nil || err.Error() != tc.want {
				t.Errorf("Err = %v, want %s", err, tc.want)
			}
			if got := tr.get(); !slices.Equal(got, []string{"start a"}) {
				t.Errorf("a failure stopped the others: %q", got)
			}
			if err := g.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			if got := tr.get(); !slices.Equal(got, []string{"start a", "ran a"}) {
				t.Errorf("got %q", got)
			}
			if l := logged.String(); !strings.Contains(l, "component failed") || !strings.Contains(l, "component=http") {
				t.Errorf("failure not logged: %s", l)
			}
		})
	}
}

// TestAbortAtDeadline: Stop waits for Run until ctx ends, then aborts it
// and waits for it to return (the scheduler's drain); without Abort it
// does not wait past ctx.
func TestAbortAtDeadline(t *testing.T) {
	tr := &trace{}
	release := make(chan struct{})
	drain := supervise.Component{Name: "scheduler",
		Run:   func(ctx context.Context) error { <-ctx.Done(); <-release; tr.add("drained"); return nil },
		Abort: func() { tr.add("abort"); close(release) }}
	stuck := make(chan struct{})
	defer close(stuck)
	noAbort := supervise.Component{Name: "refresh", Run: func(context.Context) error { <-stuck; return nil }}
	g := supervise.New(nil)
	if err := g.Start(context.Background(), noAbort, drain); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if got := tr.get(); !slices.Equal(got, []string{"abort", "drained"}) {
		t.Errorf("got %q", got)
	}
}

// TestDrainBeforeDeadline: a Run that returns in time is not aborted.
func TestDrainBeforeDeadline(t *testing.T) {
	tr := &trace{}
	c := supervise.Component{Name: "scheduler",
		Run:   func(ctx context.Context) error { <-ctx.Done(); tr.add("drained"); return nil },
		Abort: func() { tr.add("abort") }}
	g := supervise.New(nil)
	if err := g.Start(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if err := g.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := tr.get(); !slices.Equal(got, []string{"drained"}) {
		t.Errorf("got %q", got)
	}
}
