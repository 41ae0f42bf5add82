package deliver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// Gate decides on held messages: those accepted while a check could not
// run (queue.Envelope.Hold: the sender check, while the Mailjet account
// state was unknown). An *intake.Intake is one.
type Gate interface {
	// Release runs the check env was accepted without. It returns nil when
	// env may be delivered; an error with a Reply() mailjet.Reply method
	// (the refusal the client would have been given) when env fails for
	// good with that reply; any other error while the check still cannot
	// run (env stays held).
	Release(ctx context.Context, env queue.Envelope) error
}

// Unclaimer is a Queue that other processes share (cluster mode, see
// relay/pgqueue): its Get takes a claim on a held message for the check,
// and Unclaim gives that claim back when the check cannot run here, so
// that a node that can run it takes the message. A held message that Get
// returns already released (by another node) joins its lane unchecked.
type Unclaimer interface {
	Unclaim(ctx context.Context, id string)
}

// GateFunc is a function that is a Gate.
type GateFunc func(ctx context.Context, env queue.Envelope) error

// Release calls f.
func (f GateFunc) Release(ctx context.Context, env queue.Envelope) error { return f(ctx, env) }

// defaultHoldRecheck is how often held messages are checked again while
// their check cannot run.
const defaultHoldRecheck = 2 * time.Second

// heldMsg is a held message waiting for its check.
type heldMsg struct {
	id   string
	lane *lane
}

// hold takes a held message aside (s.mu held): it waits for the gate, not
// for a lane.
func (s *Scheduler) hold(it queue.Item, l *lane) {
	s.held = append(s.held, heldMsg{id: it.Envelope.ID, lane: l})
	l.held++
}

// unhold removes a held message; false if it was not held (any more).
func (s *Scheduler) unhold(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.held, func(h heldMsg) bool { return h.id == id })
	if i < 0 {
		return false
	}
	s.held[i].lane.held--
	s.held = slices.Delete(s.held, i, i+1)
	return true
}

func (s *Scheduler) pokeHeld() {
	select {
	case s.holdWake <- struct{}{}:
	default:
	}
}

// releaseHeld checks the held messages every HoldRecheck, and at once when
// poked (a new held message, RetryNow), until ctx ends.
func (s *Scheduler) releaseHeld(ctx context.Context) {
	t := time.NewTimer(s.opts.HoldRecheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.holdWake:
		case <-t.C:
		}
		s.releaseRound(ctx)
		t.Reset(s.opts.HoldRecheck)
	}
}

// releaseRound asks the gate about each held message, oldest first: a
// message it lets go joins its lane, one it refuses fails for good with
// the refusal's reply. The round stops at the first message whose check
// still cannot run: what it waits for (the account state) is the same for
// the others, which are younger; one held longer than queue.max_lifetime
// fails, as a message retried that long does.
func (s *Scheduler) releaseRound(ctx context.Context) {
	s.mu.Lock()
	round := slices.Clone(s.held)
	s.mu.Unlock()
	released, failed := 0, 0
	defer func() {
		if released+failed > 0 {
			s.log.Info("held messages checked", "released", released, "failed", failed)
		}
	}()
	for _, h := range round {
		if ctx.Err() != nil {
			return
		}
		it, err := s.q.Get(h.id)
		if err != nil {
			s.unhold(h.id) // deleted meanwhile (or another node checks it)
			continue
		}
		if it.Held() == "" { // released meanwhile by another node
			if s.unhold(h.id) {
				s.ready(h.id, h.lane)
			}
			continue
		}
		err = s.opts.Gate.Release(ctx, it.Envelope)
		var refusal interface{ Reply() mailjet.Reply }
		switch {
		case err == nil:
			if s.release(ctx, it, h.lane) {
				released++
			}
		case errors.As(err, &refusal):
			done, kept := s.refuse(ctx, it, refusal.Reply())
			if kept {
				return // Final cannot keep failures now: the next round tries again
			}
			if done {
				failed++
			}
		case time.Since(it.Envelope.Received) > s.opts.MaxLifetime:
			reason := fmt.Sprintf("gave up after %s held (queue.max_lifetime): %s", s.opts.MaxLifetime, it.Envelope.Hold)
			done, kept := s.expire(ctx, it, reason)
			if kept {
				return
			}
			if done {
				failed++
			}
		default:
			if u, ok := s.q.(Unclaimer); ok {
				u.Unclaim(ctx, h.id)
			}
			return
		}
	}
}

// release records that a held message passed its check and puts it in its
// lane.
func (s *Scheduler) release(ctx context.Context, it queue.Item, l *lane) bool {
	if !s.unhold(it.Envelope.ID) {
		return false
	}
	it.State.Released = true
	if err := s.q.SetState(ctx, it.State); err != nil {
		if errors.Is(err, queue.ErrNotFound) {
			return false
		}
		// Delivered anyway: after a restart it is only checked again.
		s.log.Error("cannot record the release of a held message", "id", it.Envelope.ID, "err", err)
	}
	s.ready(it.Envelope.ID, l)
	return true
}

// ready puts a released message in its lane.
func (s *Scheduler) ready(id string, l *lane) {
	s.mu.Lock()
	l.ready = append(l.ready, id)
	s.mu.Unlock()
	s.poke()
}

// refuse fails a held message for good with the reply its check gave.
func (s *Scheduler) refuse(ctx context.Context, it queue.Item, reply mailjet.Reply) (failed, kept bool) {
	return s.failHeld(ctx, it, trafficlog.Try{To: it.Envelope.To, Reply: reply, Reason: reply.Text})
}

// expire fails a message held too long.
func (s *Scheduler) expire(ctx context.Context, it queue.Item, reason string) (failed, kept bool) {
	return s.failHeld(ctx, it, trafficlog.Try{To: it.Envelope.To, Reason: reason})
}

// failHeld fails a held message for good, as attempt does a message: the
// failure is handed to Options.Final (the Odoo feedback) before it is
// recorded and the message leaves the queue. kept: Final could not keep
// it, and the message stays held (and counted so) until the next round.
func (s *Scheduler) failHeld(ctx context.Context, it queue.Item, f trafficlog.Try) (failed, kept bool) {
	id := it.Envelope.ID
	ev := trafficlog.NewFailed(it.Envelope, f)
	if s.opts.Final != nil {
		body, err := s.q.Body(id)
		if err == nil {
			err = s.reportFinal(ctx, ev, body)
		}
		if errors.Is(err, queue.ErrNotFound) {
			s.unhold(id)
			return false, false // deleted meanwhile
		}
		if err != nil {
			return false, true
		}
	}
	if !s.unhold(id) {
		return false, false // deleted meanwhile
	}
	if err := s.q.Done(ctx, id); err != nil {
		if !errors.Is(err, queue.ErrNotFound) {
			s.log.Error("cannot complete a held message", "id", id, "err", err)
		}
		return false, false
	}
	s.opts.Traffic.Record(ev)
	return true, false
}
