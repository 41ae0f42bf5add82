// Package supervise runs a process's components: it starts them in the
// order given and stops them in the reverse order, and it reports a
// component that fails while it runs instead of dropping its error. The
// order is data, a list of Components; there is nothing else to it.
package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// Component is one part of the process. Every func is optional.
type Component struct {
	Name string
	// Start brings the component up (opens, binds) and returns once it is;
	// an error stops the start.
	Start func(ctx context.Context) error
	// Run, started in its own goroutine once Start returned, serves until
	// its ctx is cancelled (when the component stops) and then returns.
	// Returning before that, with an error or not, is a failure of the
	// running component: it is logged and reported by Err.
	Run func(ctx context.Context) error
	// Stop stops the component within ctx; for a component with Run it is
	// called once Run's ctx is cancelled, and the component is then waited
	// for until Run returns or ctx ends.
	Stop func(ctx context.Context) error
	// Abort, when ctx ends before Run has returned, cuts Run short; Run
	// is then waited for. Without Abort it is left to finish on its own.
	Abort func()
}

// Group is the started components of a process.
type Group struct {
	log *slog.Logger

	mu      sync.Mutex
	started []*running
	err     error
	failed  chan struct{}
}

type running struct {
	c      Component
	cancel context.CancelFunc // Run's ctx
	done   chan struct{}      // closed when Run returned
}

// New returns an empty group that logs failures to log (nil: nowhere).
func New(log *slog.Logger) *Group {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Group{log: log, failed: make(chan struct{})}
}

// Start starts cs in order, after those a former call started. When one
// fails to start, every component of the group is stopped, in the reverse
// order and within ctx, and its error is returned as is.
func (g *Group) Start(ctx context.Context, cs ...Component) error {
	for _, c := range cs {
		if c.Start != nil {
			if err := c.Start(ctx); err != nil {
				g.Stop(ctx)
				return err
			}
		}
		rc := &running{c: c, cancel: func() {}}
		if c.Run != nil {
			var runCtx context.Context
			runCtx, rc.cancel = context.WithCancel(context.WithoutCancel(ctx))
			rc.done = make(chan struct{})
			go g.run(runCtx, rc)
		}
		g.mu.Lock()
		g.started = append(g.started, rc)
		g.mu.Unlock()
	}
	return nil
}

func (g *Group) run(ctx context.Context, rc *running) {
	defer close(rc.done)
	err := rc.c.Run(ctx)
	if ctx.Err() != nil {
		return // stopped
	}
	if err == nil {
		err = errors.New("stopped by itself")
	}
	g.log.Error("component failed", "component", rc.c.Name, "err", err)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err == nil {
		g.err = fmt.Errorf("%s: %w", rc.c.Name, err)
		close(g.failed)
	}
}

// Stop stops the started components in the reverse order, each within
// ctx, and returns what their Stop returned (with the component's name).
// A second Stop has nothing left to stop.
func (g *Group) Stop(ctx context.Context) error {
	g.mu.Lock()
	started := g.started
	g.started = nil
	g.mu.Unlock()
	var errs []error
	for i := len(started) - 1; i >= 0; i-- {
		if err := started[i].stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", started[i].c.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (rc *running) stop(ctx context.Context) error {
	rc.cancel()
	var err error
	if rc.c.Stop != nil {
		err = rc.c.Stop(ctx)
	}
	if rc.done == nil {
		return err
	}
	select {
	case <-rc.done:
	case <-ctx.Done():
		if rc.c.Abort != nil {
			rc.c.Abort()
			<-rc.done
		}
	}
	return err
}

// Err is the first failure of a running component (nil while none failed).
func (g *Group) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// Failed is closed at the first failure of a running component.
func (g *Group) Failed() <-chan struct{} { return g.failed }
