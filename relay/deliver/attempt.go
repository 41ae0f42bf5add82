package deliver

import (
	"context"
	"fmt"
	"time"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// attempt delivers one message once through its lane's transports, in
// order: recipients that fail temporarily on one transport are tried on the
// next; a transport that cannot carry the message hands all of it on. A
// message deferred is returned, to be scheduled again once it is no longer
// in flight (else a short backoff could make it due while still marked in
// flight, and it would be dropped from its lane).
func (s *Scheduler) attempt(id string, l *lane) (again *queue.Item) {
	// Bookkeeping must not be cut short by shutdown: it is what makes the
	// outcome durable.
	ctx := context.Background()
	it, err := s.q.Get(id)
	if err != nil {
		return // delivered or deleted meanwhile
	}
	body, err := s.q.Body(id)
	if err != nil {
		s.log.Error("cannot read queued message", "id", id, "err", err)
		return
	}
	remaining := it.State.Pending
	if remaining == nil {
		remaining = it.Envelope.To
	}
	// The lane's transports as they are now: a reload (SetLanes) may
	// change them meanwhile; these stay open until this attempt ends.
	s.mu.Lock()
	targets, hs, prio, inUse := l.Targets, l.health, l.Priority, s.inUse
	inUse.Add(1)
	s.mu.Unlock()
	defer inUse.Done()
	attemptNo := it.State.Attempts + 1
	tried, unsupported := 0, ""
	var lastTransport, lastUpstream string
	var temp []mailjet.RcptResult
	for i, t := range targets {
		if len(remaining) == 0 {
			break
		}
		if !hs[i].available(time.Now()) {
			continue
		}
		tried++
		m := &mailjet.Message{ID: id, From: it.Envelope.From, Rcpts: remaining, UTF8: it.Envelope.UTF8, Body: body,
			Hints: mailjet.Hints{Priority: prio, Campaign: it.Envelope.Campaign}}
		res := s.deliverOnce(ctx, t, hs[i], m, it, attemptNo)
		lastTransport, lastUpstream = t.Name(), res.Upstream
		if res.Unsupported {
			unsupported = fmt.Sprintf("%s transport: %s", t.Name(), res.Reply)
			continue
		}
		temp, remaining = nil, nil
		for _, r := range res.Rcpts {
			if r.Status == mailjet.TempFail {
				temp = append(temp, r)
				remaining = append(remaining, r.Rcpt)
			}
		}
	}
	if len(remaining) == 0 {
		s.finish(ctx, it)
		return
	}

	s.mu.Lock()
	deleted := s.deleted[id]
	s.mu.Unlock()
	// final fails the remaining recipients for good; false: the failure
	// could not be handed to Options.Final, the message stays queued.
	final := func(reason string, report bool) bool {
		f := trafficlog.Try{Attempt: attemptNo, To: remaining, Transport: lastTransport, Upstream: lastUpstream, Reason: reason}
		if len(temp) > 0 {
			f.Reply = temp[0].Reply
		}
		ev := trafficlog.NewFailed(it.Envelope, f)
		if report && s.reportFinal(ctx, ev, body) != nil {
			return false
		}
		s.opts.Traffic.Record(ev)
		s.finish(ctx, it)
		return true
	}
	switch {
	case deleted:
		final("deleted by an administrator during delivery", false)
		return
	case tried > 0 && len(temp) == 0:
		// Every transport tried said it cannot carry this message.
		if final("no transport of the "+string(l.Class)+" lane can carry this message: "+unsupported, true) {
			return
		}
	case time.Since(it.Envelope.Received) > s.retry.Load().MaxLifetime:
		if final(fmt.Sprintf("gave up after %d attempts over %s (queue.max_lifetime)", attemptNo, s.retry.Load().MaxLifetime), true) {
			return
		}
	}

	st := queue.State{ID: id, Attempts: attemptNo, Pending: remaining, Released: it.State.Released}
	var why mailjet.Reply
	if tried == 0 {
		// All transports are cooling down: wait for the first probe, and
		// do not count an attempt that was not made.
		st.Attempts = it.State.Attempts
		st.Next = earliestProbe(hs)
		why.Text = "all transports of the " + string(l.Class) + " lane are cooling down after repeated failures"
	} else {
		st.Next = time.Now().Add(s.backoff(attemptNo))
		why = temp[0].Reply
	}
	st.LastError = why.String()
	if err := s.q.SetState(ctx, st); err != nil {
		s.log.Error("cannot record retry state", "id", id, "err", err)
	}
	s.opts.Traffic.Record(trafficlog.NewDeferred(it.Envelope, trafficlog.Try{Attempt: st.Attempts, To: st.Pending,
		Transport: lastTransport, Upstream: lastUpstream, Reply: why, Next: st.Next}))
	return &queue.Item{Envelope: it.Envelope, State: st}
}

// deliverOnce runs one transport and records the attempt and the final
// outcomes it produced (delivered, permanent failures).
func (s *Scheduler) deliverOnce(ctx context.Context, t mailjet.Target, h *health, m *mailjet.Message, it queue.Item, attemptNo int) mailjet.Result {
	actx, cancel := context.WithTimeout(s.abortCtx, s.opts.AttemptTimeout)
	start := time.Now()
	res := t.Deliver(actx, m)
	cancel()
	if h.observe(res, time.Now()) {
		s.log.Warn("transport failing repeatedly: skipped for a cool-down, then probed again", "transport", t.Name(), "upstream", res.Upstream, "until", h.wait(), "reply", res.Reply)
	}

	try := trafficlog.Try{Attempt: attemptNo, Transport: t.Name(), Upstream: res.Upstream, UpstreamID: res.UpstreamID}
	a := try
	a.To, a.Reply, a.Rcpts, a.Duration = m.Rcpts, res.Reply, trafficlog.RcptResults(res.Rcpts), time.Since(start)
	var ok, perm []mailjet.RcptResult
	for _, r := range res.Rcpts {
		switch {
		case res.Unsupported:
		case r.Status == mailjet.Delivered:
			ok = append(ok, r)
		case r.Status == mailjet.PermFail:
			perm = append(perm, r)
		}
	}
	s.opts.Traffic.Record(trafficlog.NewAttempt(it.Envelope, a))

	build := func(event func(queue.Envelope, trafficlog.Try) trafficlog.Event, rs []mailjet.RcptResult, reason string) trafficlog.Event {
		o := try
		o.To, o.Reply, o.Reason, o.Rcpts = rcptsOf(rs), rs[0].Reply, reason, trafficlog.RcptResults(rs)
		o.Duration = time.Since(it.Envelope.Received)
		return event(it.Envelope, o)
	}
	switch {
	case len(ok) == 0:
	case t.Name() == "sandbox":
		s.opts.Traffic.Record(build(trafficlog.NewSandboxed, ok, "sandbox mode: recorded, not sent"))
	default:
		s.opts.Traffic.Record(build(trafficlog.NewDelivered, ok, ""))
	}
	if len(perm) > 0 {
		ev := build(trafficlog.NewFailed, perm, "permanent error from the upstream")
		if err := s.reportFinal(ctx, ev, m.Body); err != nil {
			// Kept queued as temporary failures until it can be reported.
			for i, r := range res.Rcpts {
				if r.Status == mailjet.PermFail {
					res.Rcpts[i].Status = mailjet.TempFail
				}
			}
		} else {
			s.opts.Traffic.Record(ev)
		}
	}
	return res
}

// reportFinal hands a permanent failure to Options.Final, if set.
func (s *Scheduler) reportFinal(ctx context.Context, ev trafficlog.Event, body []byte) error {
	if s.opts.Final == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err := s.opts.Final(ctx, ev, body)
	if err != nil {
		s.log.Error("a permanent failure could not be kept for the Odoo feedback; the message stays queued and is tried again",
			"id", ev.ID, "err", err)
	}
	return err
}

func (s *Scheduler) finish(ctx context.Context, it queue.Item) {
	if err := s.q.Done(ctx, it.Envelope.ID); err != nil {
		s.log.Error("cannot complete queued message", "id", it.Envelope.ID, "err", err)
	}
}

// earliestProbe is when the first of a lane's transports (their health
// hs) may be tried again.
func earliestProbe(hs []*health) time.Time {
	var t time.Time
	for _, h := range hs {
		if w := h.wait(); t.IsZero() || w.Before(t) {
			t = w
		}
	}
	if t.Before(time.Now()) {
		t = time.Now().Add(time.Second)
	}
	return t
}

func rcptsOf(rs []mailjet.RcptResult) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Rcpt
	}
	return out
}
