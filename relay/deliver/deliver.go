// Package deliver moves queued messages to the upstream: a FIFO of ready
// messages, a timer heap of deferred ones, and a pool of workers that hand
// each message to a mailjet.Target and record the outcome in the spool and
// the traffic log. 4xx and network failures are retried with exponential
// backoff and jitter until queue.max_lifetime; 5xx failures are final.
package deliver

import (
	"container/heap"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/relay/spool"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// Spool is the queue storage the scheduler uses (a *spool.Spool).
type Spool interface {
	Body(id string) ([]byte, error)
	Get(id string) (spool.Item, error)
	SetState(ctx context.Context, st spool.State) error
	Done(ctx context.Context, id string) error
}

// Options configure the scheduler.
type Options struct {
	Concurrency int
	RetryMin    time.Duration
	RetryMax    time.Duration
	MaxLifetime time.Duration
	// AttemptTimeout bounds one delivery attempt (default 10 min).
	AttemptTimeout time.Duration
	Traffic        trafficlog.Recorder
	Logger         *slog.Logger
}

// Scheduler delivers queued messages. Enqueue is its input (wire it to the
// spool's OnCommit); Run drives it.
type Scheduler struct {
	sp     Spool
	target mailjet.Target
	opts   Options
	log    *slog.Logger

	mu       sync.Mutex
	ready    []string // FIFO
	later    delayHeap
	inFlight map[string]bool
	deleted  map[string]bool // deleted while in flight
	wake     chan struct{}

	// abort cancels the attempts in flight (see Abort).
	abortCtx context.Context
	abort    context.CancelFunc
}

// New builds a scheduler.
func New(sp Spool, target mailjet.Target, opts Options) *Scheduler {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 1
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = 10 * time.Minute
	}
	if opts.Traffic == nil {
		opts.Traffic = trafficlog.Discard{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Scheduler{
		sp: sp, target: target, opts: opts, log: opts.Logger,
		inFlight: map[string]bool{}, deleted: map[string]bool{},
		wake: make(chan struct{}, 1),
	}
	s.abortCtx, s.abort = context.WithCancel(context.Background())
	return s
}

// Abort cancels the attempts in flight; they end as temporary failures and
// are retried after the next start. Run's caller uses it when a graceful
// stop takes too long.
func (s *Scheduler) Abort() { s.abort() }

// Enqueue schedules a stored message: at once, or at its State.Next.
func (s *Scheduler) Enqueue(it spool.Item) {
	s.mu.Lock()
	if it.State.Next.After(time.Now()) {
		heap.Push(&s.later, delayed{id: it.Envelope.ID, at: it.State.Next})
	} else {
		s.ready = append(s.ready, it.Envelope.ID)
	}
	s.mu.Unlock()
	s.poke()
}

func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends, then waits for the attempts in flight.
func (s *Scheduler) Run(ctx context.Context) {
	work := make(chan string)
	var wg sync.WaitGroup
	for i := 0; i < s.opts.Concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				s.attempt(id)
			}
		}()
	}
	defer func() { close(work); wg.Wait() }()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		id, wait := s.next()
		if id != "" {
			select {
			case work <- id:
				continue
			case <-ctx.Done():
				s.requeueFront(id)
				return
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-timer.C:
		}
	}
}

// next pops the next ready message, moving due ones from the heap first. If
// none is ready it returns how long to wait.
func (s *Scheduler) next() (string, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for s.later.Len() > 0 && !s.later[0].at.After(now) {
		s.ready = append(s.ready, heap.Pop(&s.later).(delayed).id)
	}
	for len(s.ready) > 0 {
		id := s.ready[0]
		s.ready[0] = ""
		s.ready = s.ready[1:]
		if s.inFlight[id] {
			continue
		}
		s.inFlight[id] = true
		return id, 0
	}
	if s.later.Len() > 0 {
		return "", s.later[0].at.Sub(now)
	}
	return "", time.Hour
}

func (s *Scheduler) requeueFront(id string) {
	s.mu.Lock()
	delete(s.inFlight, id)
	s.ready = append([]string{id}, s.ready...)
	s.mu.Unlock()
}

// RetryNow makes a deferred message (or all, with id "") ready at once.
func (s *Scheduler) RetryNow(id string) int {
	s.mu.Lock()
	n := 0
	keep := s.later[:0]
	for _, d := range s.later {
		if id == "" || d.id == id {
			s.ready = append(s.ready, d.id)
			n++
		} else {
			keep = append(keep, d)
		}
	}
	s.later = keep
	heap.Init(&s.later)
	s.mu.Unlock()
	s.poke()
	return n
}

// ErrInFlight is returned by Delete for a message being delivered right now.
var ErrInFlight = errors.New("deliver: message is being delivered right now")

// Delete removes a message from the queue for good.
func (s *Scheduler) Delete(ctx context.Context, id string) error {
	it, err := s.sp.Get(id)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.inFlight[id] {
		s.deleted[id] = true
		s.mu.Unlock()
		return ErrInFlight
	}
	s.mu.Unlock()
	if err := s.sp.Done(ctx, id); err != nil {
		return err
	}
	e := event(trafficlog.Deleted, it)
	e.Reason = "deleted by an administrator"
	s.opts.Traffic.Record(e)
	return nil
}

// Pending reports how many messages wait (ready, deferred, in flight).
func (s *Scheduler) Pending() (ready, deferred, inFlight int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ready), s.later.Len(), len(s.inFlight)
}

// backoff is min(RetryMin·2^(n-1), RetryMax), jittered by ±20% and kept
// within [RetryMin, RetryMax].
func (s *Scheduler) backoff(attempts int) time.Duration {
	d := s.opts.RetryMin << min(attempts-1, 30)
	if d > s.opts.RetryMax || d <= 0 {
		d = s.opts.RetryMax
	}
	d = time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	return min(max(d, s.opts.RetryMin), s.opts.RetryMax)
}

type delayed struct {
	id string
	at time.Time
}

type delayHeap []delayed

func (h delayHeap) Len() int           { return len(h) }
func (h delayHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h delayHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *delayHeap) Push(x any)        { *h = append(*h, x.(delayed)) }
func (h *delayHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
