package deliver

import (
	"context"
	"fmt"
	"time"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/relay/spool"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

func event(kind string, it spool.Item) trafficlog.Event {
	return trafficlog.Event{
		Event: kind, ID: it.Envelope.ID, Client: it.Envelope.Client, User: it.Envelope.User,
		From: it.Envelope.From, To: it.Envelope.To, HeaderFrom: it.Envelope.HeaderFrom,
		Subject: it.Envelope.Subject, MessageID: it.Envelope.MessageID, Size: it.Envelope.Size,
	}
}

// attempt delivers one message once and records the outcome.
func (s *Scheduler) attempt(id string) {
	defer func() {
		s.mu.Lock()
		delete(s.inFlight, id)
		delete(s.deleted, id)
		s.mu.Unlock()
	}()
	// Bookkeeping must not be cut short by shutdown: it is what makes the
	// outcome durable.
	ctx := context.Background()
	it, err := s.sp.Get(id)
	if err != nil {
		return // delivered or deleted meanwhile
	}
	body, err := s.sp.Body(id)
	if err != nil {
		s.log.Error("cannot read queued message", "id", id, "err", err)
		return
	}
	rcpts := it.State.Pending
	if rcpts == nil {
		rcpts = it.Envelope.To
	}
	m := &mailjet.Message{ID: id, From: it.Envelope.From, Rcpts: rcpts, UTF8: it.Envelope.UTF8, Body: body}
	actx, cancel := context.WithTimeout(s.abortCtx, s.opts.AttemptTimeout)
	start := time.Now()
	res := s.target.Deliver(actx, m)
	cancel()
	took := time.Since(start)
	attemptNo := it.State.Attempts + 1

	e := event(trafficlog.Attempt, it)
	e.Transport, e.Upstream, e.UpstreamID, e.Reply, e.Attempt = s.target.Name(), res.Upstream, res.UpstreamID, res.Reply, attemptNo
	e.DurationMS = mailjet.Dur(took)
	var ok, temp, perm []mailjet.RcptResult
	for _, r := range res.Rcpts {
		e.Rcpts = append(e.Rcpts, trafficlog.RcptResult{Rcpt: r.Rcpt, Reply: r.Reply})
		switch r.Status {
		case mailjet.Delivered:
			ok = append(ok, r)
		case mailjet.TempFail:
			temp = append(temp, r)
		default:
			perm = append(perm, r)
		}
	}
	s.opts.Traffic.Record(e)

	outcome := func(kind string, rs []mailjet.RcptResult, reason string) {
		if len(rs) == 0 {
			return
		}
		o := event(kind, it)
		o.To = rcptsOf(rs)
		o.Transport, o.Upstream, o.UpstreamID, o.Attempt, o.Reason = s.target.Name(), res.Upstream, res.UpstreamID, attemptNo, reason
		o.Reply = rs[0].Reply
		o.DurationMS = mailjet.Dur(time.Since(it.Envelope.Received))
		s.opts.Traffic.Record(o)
	}
	if s.target.Name() == "sandbox" {
		outcome(trafficlog.Sandboxed, ok, "sandbox mode: recorded, not sent")
	} else {
		outcome(trafficlog.Delivered, ok, "")
	}
	outcome(trafficlog.Failed, perm, "permanent error from the upstream")

	s.mu.Lock()
	deleted := s.deleted[id]
	s.mu.Unlock()
	expired := time.Since(it.Envelope.Received) > s.opts.MaxLifetime
	if len(temp) == 0 || deleted || expired {
		if len(temp) > 0 {
			reason := "deleted by an administrator during delivery"
			if !deleted {
				reason = fmt.Sprintf("gave up after %d attempts over %s (queue.max_lifetime)", attemptNo, s.opts.MaxLifetime)
			}
			outcome(trafficlog.Failed, temp, reason)
		}
		if err := s.sp.Done(ctx, id); err != nil {
			s.log.Error("cannot complete queued message", "id", id, "err", err)
		}
		return
	}
	next := time.Now().Add(s.backoff(attemptNo))
	st := spool.State{ID: id, Attempts: attemptNo, Next: next, LastError: temp[0].Reply, Pending: rcptsOf(temp)}
	if err := s.sp.SetState(ctx, st); err != nil {
		s.log.Error("cannot record retry state", "id", id, "err", err)
	}
	d := event(trafficlog.Deferred, it)
	d.To, d.Transport, d.Upstream, d.Reply, d.Attempt, d.Next = st.Pending, s.target.Name(), res.Upstream, st.LastError, attemptNo, next
	s.opts.Traffic.Record(d)
	s.Enqueue(spool.Item{Envelope: it.Envelope, State: st})
}

func rcptsOf(rs []mailjet.RcptResult) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Rcpt
	}
	return out
}
