package queue

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrUnavailable is returned by a queue that stands for another
// process's (relay/forward) when that process cannot be reached. A call
// that failed with it may be made again on the next backend of a Switch.
var ErrUnavailable = errors.New("queue: the process that holds the queue cannot be reached")

// Switch is a Queue whose backend is replaced while it is in use. The
// relay's intake stores into it: into the relay's own queue, then, while
// a new process takes the queue over, into a queue that forwards to that
// process (relay/forward), or, in the new process, into nothing until the
// former one has released the queue and this one has opened it.
//
// Set returns once the calls in progress on the former backend have
// returned, so that the caller may then close it. While there is no
// backend, NewID, Admit and Put wait for one (until their context ends,
// at most Wait for a context without a deadline); the other methods
// answer at once, as a closed queue would. An Admit or a Put that fails
// with ErrUnavailable waits for the next backend and is made again there
// (a Put only unless that backend already has the message: the former one
// stored it before it went away), so that a message is never stored twice.
type Switch struct {
	// Wait bounds how long a call without a deadline waits for a backend.
	Wait time.Duration

	mu  sync.Mutex
	cur *backend
}

// backend is one queue behind a Switch. Calls hold use for reading while
// they run; Set takes it for writing to wait for them.
type backend struct {
	q       Queue
	use     sync.RWMutex
	retired bool
	gone    chan struct{} // closed when replaced
}

var _ Queue = (*Switch)(nil)

// NewSwitch returns a switch with no backend (q nil) or with q.
func NewSwitch(q Queue, wait time.Duration) *Switch {
	return &Switch{Wait: wait, cur: &backend{q: q, gone: make(chan struct{})}}
}

// Set makes q (nil: none) the backend and returns once no call is in
// progress on the former one.
func (s *Switch) Set(q Queue) {
	s.mu.Lock()
	old := s.cur
	s.cur = &backend{q: q, gone: make(chan struct{})}
	s.mu.Unlock()
	close(old.gone)
	old.use.Lock()
	old.retired = true
	old.use.Unlock()
}

// Current is the backend now (nil: none).
func (s *Switch) Current() Queue {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.q
}

func (s *Switch) current() *backend {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// acquire holds the current backend for one call (release with
// b.use.RUnlock); when there is none it waits for one until ctx ends, for
// at most Wait when ctx has no deadline.
func (s *Switch) acquire(ctx context.Context) (*backend, error) {
	cancel := context.CancelFunc(nil)
	defer func() {
		if cancel != nil {
			cancel()
		}
	}()
	for {
		b := s.current()
		if b.q != nil {
			b.use.RLock()
			if !b.retired {
				return b, nil
			}
			b.use.RUnlock()
			continue
		}
		if cancel == nil { // the first wait: bound it
			ctx, cancel = s.bound(ctx)
		}
		select {
		case <-b.gone:
		case <-ctx.Done():
			return nil, ErrUnavailable
		}
	}
}

// bound gives ctx a deadline of Wait if it has none.
func (s *Switch) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok || s.Wait <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.Wait)
}

// do runs fn on the current backend (nil when there is none), which stays
// current until fn returns.
func (s *Switch) do(fn func(Queue)) {
	for {
		b := s.current()
		b.use.RLock()
		if b.retired {
			b.use.RUnlock()
			continue
		}
		defer b.use.RUnlock()
		fn(b.q)
		return
	}
}

// held returns the backend held for one call: at once when there is one,
// else once there is one, for at most Wait.
func (s *Switch) held() (*backend, error) { return s.acquire(context.Background()) }

func (s *Switch) NewID() string {
	b, err := s.held()
	if err != nil {
		return ""
	}
	defer b.use.RUnlock()
	return b.q.NewID()
}

func (s *Switch) Admit(size int64) error {
	for {
		b, err := s.held()
		if err != nil {
			return err
		}
		err = b.q.Admit(size)
		b.use.RUnlock()
		if !errors.Is(err, ErrUnavailable) {
			return err
		}
		select { // asked again of the next backend
		case <-b.gone:
		case <-time.After(s.Wait):
			return err
		}
	}
}

func (s *Switch) Put(ctx context.Context, env *Envelope, parts ...[]byte) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	retry := false
	for {
		b, err := s.acquire(ctx)
		if err != nil {
			return err
		}
		if retry {
			if _, err := b.q.Get(env.ID); err == nil {
				b.use.RUnlock()
				return nil // stored by the former backend before it went away
			}
		}
		err = b.q.Put(ctx, env, parts...)
		b.use.RUnlock()
		if !errors.Is(err, ErrUnavailable) {
			return err
		}
		select {
		case <-b.gone:
			retry = true
		case <-ctx.Done():
			return err
		}
	}
}

func (s *Switch) Subscribe(fn func(Item)) {
	s.do(func(q Queue) {
		if q != nil {
			q.Subscribe(fn)
		}
	})
}

func (s *Switch) Get(id string) (it Item, err error) {
	err = ErrClosed
	s.do(func(q Queue) {
		if q != nil {
			it, err = q.Get(id)
		}
	})
	return it, err
}

func (s *Switch) Body(id string) (b []byte, err error) {
	err = ErrClosed
	s.do(func(q Queue) {
		if q != nil {
			b, err = q.Body(id)
		}
	})
	return b, err
}

func (s *Switch) SetState(ctx context.Context, st State) (err error) {
	err = ErrClosed
	s.do(func(q Queue) {
		if q != nil {
			err = q.SetState(ctx, st)
		}
	})
	return err
}

func (s *Switch) Done(ctx context.Context, id string) (err error) {
	err = ErrClosed
	s.do(func(q Queue) {
		if q != nil {
			err = q.Done(ctx, id)
		}
	})
	return err
}

func (s *Switch) List() (items []Item) {
	s.do(func(q Queue) {
		if q != nil {
			items = q.List()
		}
	})
	return items
}

func (s *Switch) Stats() (st Stats) {
	s.do(func(q Queue) {
		if q != nil {
			st = q.Stats()
		}
	})
	return st
}

// Close does nothing: the backends are closed by whoever set them.
func (s *Switch) Close() error { return nil }
