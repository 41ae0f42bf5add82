package deliver

import (
	"context"
	"time"

	"github.com/mjrelay/mjrelay/relay/lanes"
)

// Pace is flow control for intake, Postfix's in_flow_delay: while the lane
// of class has more than its FlowBacklog ready messages, it waits for one
// of the lane's attempts to end, at most FlowDelay, and returns how long it
// waited. The intake calls it before storing a message, so a mass
// mailing submitted faster than it can leave is taken in at the pace it
// leaves instead of spending the CPU that transactional mail needs; nothing
// is refused, the client only waits for its 250.
func (s *Scheduler) Pace(ctx context.Context, class lanes.Class) time.Duration {
	return s.PaceBehind(ctx, class, -1)
}

// PaceBehind is Pace with the lane's backlog counted elsewhere (ready >=
// 0: the ready messages of the whole cluster, which this node's scheduler
// does not hold); the wait is for one of this node's attempts of the lane.
func (s *Scheduler) PaceBehind(ctx context.Context, class lanes.Class, ready int) time.Duration {
	s.mu.Lock()
	l := s.laneFor(string(class))
	if ready < 0 {
		ready = len(l.ready)
	}
	behind := l.FlowBacklog > 0 && l.FlowDelay > 0 && ready > l.FlowBacklog
	if behind != l.pacing {
		l.pacing = behind
		if behind {
			s.log.Info("lane behind: new messages wait for deliveries before their 250", "lane", l.Class, "ready", ready, "flow_backlog", l.FlowBacklog)
		} else {
			s.log.Info("lane caught up: intake no longer paced", "lane", l.Class, "ready", ready)
		}
	}
	delay, freed := l.FlowDelay, l.freed
	s.mu.Unlock()
	if !behind {
		return 0
	}
	start := time.Now()
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-freed:
	case <-t.C:
	case <-ctx.Done():
	}
	return time.Since(start)
}
