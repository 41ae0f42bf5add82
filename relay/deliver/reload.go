package deliver

import (
	"reflect"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/relay/lanes"
)

// Retry are the retry settings SetRetry changes.
type Retry struct {
	RetryMin, RetryMax, MaxLifetime time.Duration
}

// SetRetry changes the backoff bounds and the lifetime of queued mail for
// the attempts that end from now on.
func (s *Scheduler) SetRetry(r Retry) { s.retry.Store(&r) }

// SetLanes changes the lanes' settings (matched by class; a class the
// scheduler has no lane for is ignored): concurrency, rate, priority,
// flow control and transports. Attempts in progress finish with the
// transports they started with; the returned channel is closed once they
// all have, after which the transports no lane uses any more can be
// closed. Messages waiting in a lane stay in it.
func (s *Scheduler) SetLanes(ls []lanes.Lane) <-chan struct{} {
	s.mu.Lock()
	for _, nl := range ls {
		for _, l := range s.lanes {
			if l.Class == nl.Class {
				s.setLane(l, nl)
			}
		}
	}
	old := s.inUse
	s.inUse = new(sync.WaitGroup)
	s.mu.Unlock()
	s.poke() // a lane may start more attempts now
	retired := make(chan struct{})
	go func() { old.Wait(); close(retired) }()
	return retired
}

// setLane gives ln the settings nl (ln's queue is kept); a transport it
// had keeps its health, a new one starts healthy.
func (s *Scheduler) setLane(ln *lane, nl lanes.Lane) {
	if nl.Concurrency <= 0 {
		nl.Concurrency = 1
	}
	if ln.freed == nil || cap(ln.freed) != nl.Concurrency {
		ln.freed = make(chan struct{}, nl.Concurrency)
	}
	switch {
	case nl.Rate <= 0:
		ln.limiter = nil
	case ln.limiter == nil || ln.Rate != nl.Rate:
		ln.limiter = rate.NewLimiter(rate.Limit(nl.Rate), max(1, int(nl.Rate)))
	}
	r := s.retry.Load()
	hs := make([]*health, len(nl.Targets))
	for i, t := range nl.Targets {
		if j := slices.IndexFunc(ln.Targets, func(o mailjet.Target) bool { return same(o, t) }); j >= 0 && j < len(ln.health) {
			hs[i] = ln.health[j]
		} else {
			hs[i] = &health{min: min(coolMin, r.RetryMin), max: max(min(coolMax, r.RetryMax), min(coolMin, r.RetryMin))}
		}
	}
	ln.Lane, ln.health = nl, hs
}

// same reports whether a and b are the same transport (false for values
// that cannot be compared).
func same(a, b mailjet.Target) bool {
	ta := reflect.TypeOf(a)
	return ta == reflect.TypeOf(b) && ta != nil && ta.Comparable() && a == b
}
