// Package deliver moves queued messages to the upstream. Each lane
// (transactional, bulk) has its own FIFO of ready messages, its own
// concurrency and rate, and its own ordered list of transports; a timer heap
// holds deferred messages. The dispatcher always starts a ready
// transactional message before any ready bulk one, and since each lane has
// its own capacity, bulk mail never takes the transactional lane's. A
// temporary failure tries the lane's next transport before the message is
// deferred with exponential backoff and jitter (until queue.max_lifetime); a
// transport that keeps failing is skipped for a cool-down, then probed. 5xx
// failures are final. Pace lets the SMTP server hold back intake for a lane
// that is far behind. A held message (accepted while its sender could not
// be checked, see Gate) waits aside until its check runs: it then joins its
// lane, or fails for good with the refusal the client would have had.
package deliver

import (
	"container/heap"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/mjrelay/mjrelay/relay/lanes"
	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// Queue is the part of a queue.Queue the scheduler uses: it reads the
// message and records each attempt's outcome.
type Queue interface {
	Body(id string) ([]byte, error)
	Get(id string) (queue.Item, error)
	SetState(ctx context.Context, st queue.State) error
	Done(ctx context.Context, id string) error
}

var _ Queue = queue.Queue(nil)

// Options configure the scheduler.
type Options struct {
	// Lanes in priority order: the first is served first. A message whose
	// class names no lane goes to the first.
	Lanes       []lanes.Lane
	RetryMin    time.Duration
	RetryMax    time.Duration
	MaxLifetime time.Duration
	// AttemptTimeout bounds one delivery attempt (default 10 min).
	AttemptTimeout time.Duration
	// Gate checks held messages before their first attempt (see Gate);
	// nil: nothing is held.
	Gate Gate
	// HoldRecheck is how often held messages are checked again while
	// their check cannot run (default 2 s).
	HoldRecheck time.Duration
	Traffic     trafficlog.Recorder
	Logger      *slog.Logger
	// Final, when set, is told of each permanent failure (the failed event
	// and the message's bytes) before it is recorded and before the message
	// leaves the queue, and must return only once what it keeps of it is
	// durable (the Odoo feedback's outbox). An error keeps the recipients
	// queued as if the failure were temporary, so that nothing is lost.
	// It is not told of a message an administrator deleted.
	Final func(ctx context.Context, ev trafficlog.Event, body []byte) error
}

// Scheduler delivers queued messages. Enqueue is its input (wire it to the
// queue's Subscribe); Run drives it.
type Scheduler struct {
	q    Queue
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	lanes    []*lane
	later    delayHeap
	held     []heldMsg // oldest first
	holdWake chan struct{}
	inFlight map[string]bool
	deleted  map[string]bool // deleted while in flight
	// twice: made ready again while in flight (a queue shared by nodes:
	// its claim loop and this scheduler's timer may hand out the same
	// message at once); looked at again when the attempt ends, when the
	// queue's Get says whether it is still to attempt.
	twice   map[string]bool
	wake    chan struct{}
	running sync.WaitGroup

	abortCtx context.Context
	abort    context.CancelFunc

	// retry holds RetryMin, RetryMax and MaxLifetime (SetRetry).
	retry atomic.Pointer[Retry]
	// inUse counts the attempts using the lanes' transports as they are
	// now (SetLanes replaces it).
	inUse *sync.WaitGroup
}

type lane struct {
	lanes.Lane
	ready    []string // FIFO
	busy     int
	limiter  *rate.Limiter
	health   []*health
	deferred int
	held     int
	freed    chan struct{} // a token per ended attempt, for Pace
	pacing   bool
}

// New builds a scheduler.
func New(q Queue, opts Options) *Scheduler {
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = 10 * time.Minute
	}
	if opts.HoldRecheck <= 0 {
		opts.HoldRecheck = defaultHoldRecheck
	}
	if opts.Traffic == nil {
		opts.Traffic = trafficlog.Discard{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Scheduler{
		q: q, opts: opts, log: opts.Logger,
		inFlight: map[string]bool{}, deleted: map[string]bool{}, twice: map[string]bool{},
		wake: make(chan struct{}, 1), holdWake: make(chan struct{}, 1), inUse: new(sync.WaitGroup),
	}
	s.retry.Store(&Retry{RetryMin: opts.RetryMin, RetryMax: opts.RetryMax, MaxLifetime: opts.MaxLifetime})
	for _, l := range opts.Lanes {
		ln := &lane{}
		s.setLane(ln, l)
		s.lanes = append(s.lanes, ln)
	}
	s.abortCtx, s.abort = context.WithCancel(context.Background())
	return s
}

// Abort cancels the attempts in flight; they end as temporary failures and
// are retried after the next start. Run's caller uses it when a graceful
// stop takes too long.
func (s *Scheduler) Abort() { s.abort() }

func (s *Scheduler) laneFor(class string) *lane {
	for _, l := range s.lanes {
		if string(l.Class) == class {
			return l
		}
	}
	return s.lanes[0]
}

// Enqueue schedules a stored message: at once, or at its State.Next; a
// held message waits for its check first.
func (s *Scheduler) Enqueue(it queue.Item) {
	s.mu.Lock()
	l := s.laneFor(it.Envelope.Class)
	if it.Held() != "" && s.opts.Gate != nil {
		s.hold(it, l)
		s.mu.Unlock()
		s.pokeHeld()
		return
	}
	if it.State.Next.After(time.Now()) {
		heap.Push(&s.later, delayed{id: it.Envelope.ID, at: it.State.Next, lane: l})
		l.deferred++
	} else {
		l.ready = append(l.ready, it.Envelope.ID)
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
	defer s.running.Wait()
	if s.opts.Gate != nil {
		s.running.Add(1)
		go func() { defer s.running.Done(); s.releaseHeld(ctx) }()
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if ctx.Err() != nil {
			return
		}
		id, l, wait := s.next()
		if id != "" {
			s.running.Add(1)
			go func() {
				defer s.running.Done()
				again := s.attempt(id, l)
				s.mu.Lock()
				l.busy--
				delete(s.inFlight, id)
				delete(s.deleted, id)
				if s.twice[id] {
					delete(s.twice, id)
					l.ready = append(l.ready, id)
				}
				s.mu.Unlock()
				if again != nil {
					s.Enqueue(*again)
				}
				select {
				case l.freed <- struct{}{}:
				default:
				}
				s.poke()
			}()
			continue
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

// next picks the next message to start: due deferred messages join their
// lane's FIFO; lanes are served in order, each within its concurrency and
// rate. Without one it returns how long to wait at most.
func (s *Scheduler) next() (string, *lane, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for s.later.Len() > 0 && !s.later[0].at.After(now) {
		d := heap.Pop(&s.later).(delayed)
		d.lane.deferred--
		d.lane.ready = append(d.lane.ready, d.id)
	}
	wait := time.Hour
	if s.later.Len() > 0 {
		wait = s.later[0].at.Sub(now)
	}
	for _, l := range s.lanes {
		for len(l.ready) > 0 && l.busy < l.Concurrency {
			id := l.ready[0]
			if s.inFlight[id] {
				s.twice[id] = true
				l.ready = l.ready[1:]
				continue
			}
			if l.limiter != nil {
				r := l.limiter.ReserveN(now, 1)
				if d := r.DelayFrom(now); d > 0 {
					r.CancelAt(now)
					wait = min(wait, d)
					break
				}
			}
			l.ready[0] = ""
			l.ready = l.ready[1:]
			l.busy++
			s.inFlight[id] = true
			return id, l, 0
		}
	}
	return "", nil, wait
}

// RetryNow makes a deferred message (or all, with id "") ready at once,
// and checks a held one (or all) at once.
func (s *Scheduler) RetryNow(id string) int {
	s.mu.Lock()
	n := 0
	for _, h := range s.held {
		if id == "" || h.id == id {
			n++
		}
	}
	if n > 0 {
		defer s.pokeHeld()
	}
	keep := s.later[:0]
	for _, d := range s.later {
		if id == "" || d.id == id {
			d.lane.ready = append(d.lane.ready, d.id)
			d.lane.deferred--
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
var ErrInFlight = errors.New("deliver: message is being delivered right now; it is removed if this attempt does not deliver it")

// Delete removes a message from the queue for good.
func (s *Scheduler) Delete(ctx context.Context, id string) error {
	it, err := s.q.Get(id)
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
	if err := s.q.Done(ctx, id); err != nil {
		return err
	}
	s.unhold(id)
	s.opts.Traffic.Record(trafficlog.NewDeleted(it.Envelope, "deleted by an administrator"))
	return nil
}

// Depth is one lane's queue: ready, deferred, in flight, and held (waiting
// for their check, see Gate).
type Depth struct {
	Ready, Deferred, InFlight, Held int
}

// Depths reports each lane's queue.
func (s *Scheduler) Depths() map[string]Depth {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]Depth{}
	for _, l := range s.lanes {
		out[string(l.Class)] = Depth{Ready: len(l.ready), Deferred: l.deferred, InFlight: l.busy, Held: l.held}
	}
	return out
}

// backoff is min(RetryMin·2^(n-1), RetryMax), jittered by ±20% and kept
// within [RetryMin, RetryMax].
func (s *Scheduler) backoff(attempts int) time.Duration {
	r := s.retry.Load()
	d := r.RetryMin << min(attempts-1, 30)
	if d > r.RetryMax || d <= 0 {
		d = r.RetryMax
	}
	d = time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	return min(max(d, r.RetryMin), r.RetryMax)
}

type delayed struct {
	id   string
	at   time.Time
	lane *lane
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
