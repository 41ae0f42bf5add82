package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mjrelay/mjrelay/relay/cluster"
	"github.com/mjrelay/mjrelay/relay/control"
	"github.com/mjrelay/mjrelay/relay/deliver"
	"github.com/mjrelay/mjrelay/relay/feedback"
	"github.com/mjrelay/mjrelay/relay/feedback/journal"
	"github.com/mjrelay/mjrelay/relay/lanes"
	"github.com/mjrelay/mjrelay/relay/queue"
)

// delivery is the open queue and the scheduler delivering from it, with
// the Odoo feedback's outbox and reporter ([odoo]). A process has one from
// opening the queue until it closes it: at shutdown, or when it hands the
// queue over to a new process (and again if that process fails and the
// queue comes back).
type delivery struct {
	q        queue.Queue
	sched    *deliver.Scheduler
	outbox   feedback.Outbox    // nil when the feedback is off
	reporter *feedback.Reporter // idem
	cancel   context.CancelFunc
	done     chan struct{} // closed when the scheduler's Run returned
	cluster  *clusterPart  // cluster mode's (nil in embedded mode)
	reported chan struct{} // closed when the reporter's Run returned
}

// openDelivery takes the queue over from the former process, if this one
// was started to replace it, then opens it and starts delivering.
func (r *Relay) openDelivery(ctx context.Context) error {
	takingOver := r.o.Process != nil && r.o.Process.HasParent()
	if takingOver {
		if err := r.takeOver(ctx); err != nil {
			return err
		}
	}
	return r.startDelivery(ctx, takingOver)
}

// startDelivery opens the queue (waiting for its lock, when taking it
// over, in case `mjrelay queue` holds it for a moment), starts the
// scheduler on it and makes it the intake's queue.
func (r *Relay) startDelivery(ctx context.Context, wait bool) error {
	cfg := r.config()
	q, err := retryLocked(ctx, wait, func() (queue.Queue, error) { return r.openQueue(ctx, cfg) },
		func(err error) bool { return errors.Is(err, ErrQueueInUse) })
	if errors.Is(err, ErrQueueInUse) {
		return fmt.Errorf("another mjrelay is already running with data_dir %s", cfg.DataDir)
	}
	if err != nil {
		return err
	}
	d := &delivery{q: q, done: make(chan struct{}), reported: make(chan struct{})}
	r.reloadMu.Lock()
	dopts := deliver.Options{
		Lanes: r.lanes, RetryMin: cfg.Queue.RetryMin.D(), RetryMax: cfg.Queue.RetryMax.D(),
		MaxLifetime: cfg.Queue.MaxLifetime.D(), Traffic: r.recs, Logger: r.log,
		Gate: deliver.GateFunc(r.release),
	}
	r.reloadMu.Unlock()
	if r.odoo != nil {
		if d.outbox, err = retryLocked(ctx, wait, func() (feedback.Outbox, error) { return r.openOutbox(ctx, cfg) },
			func(err error) bool { return errors.Is(err, journal.ErrLocked) }); err != nil {
			q.Close()
			return err
		}
		d.reporter = r.newReporter(d.outbox)
		dopts.Final = d.reporter.Failed
	}
	var dq deliver.Queue = q
	cq, clustered := q.(*cluster.Queue)
	if clustered {
		dq, dopts.Lanes = cq.Deliverer(), clusterLanes(dopts.Lanes)
	}
	d.sched = deliver.New(dq, dopts)
	if clustered {
		d.cluster = r.startCluster(cq, d.sched)
	}
	q.Subscribe(d.sched.Enqueue)
	if st := q.Stats(); st.Messages > 0 {
		r.log.Info("resuming the queue", "messages", st.Messages)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go func() { d.sched.Run(runCtx); close(d.done) }()
	go func() {
		defer close(d.reported)
		if d.reporter != nil {
			d.reporter.Run(runCtx)
		}
	}()
	r.cur.Store(d)
	r.Queue.Set(q)
	return nil
}

// retryLocked opens with open, trying again for 10 s while locked says the
// other process still holds it (when wait: taking it over).
func retryLocked[T any](ctx context.Context, wait bool, open func() (T, error), locked func(error) bool) (T, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := open()
		if err == nil || !locked(err) || !wait || time.Now().After(deadline) {
			return v, err
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return v, ctx.Err()
		}
	}
}

// closeDelivery is the queue component's stop: delivery stops, the queue
// closes (unless it was handed over), and the forwarding to the process
// that took it, if any, ends.
func (r *Relay) closeDelivery(ctx context.Context) error {
	if r.cur.Load() != nil {
		r.Queue.Set(nil)
	}
	_, err := r.stopDelivery(ctx)
	if f := r.handover.forwarding(); f != nil {
		f.Close()
	}
	return err
}

// stopDelivery stops the scheduler, lets the attempts in flight end
// until ctx does, then cuts them short, and closes the queue. It returns
// how many attempts were cut short: Mailjet may have taken those messages
// without the relay learning it, so they may go out twice when retried.
func (r *Relay) stopDelivery(ctx context.Context) (cut int, err error) {
	d := r.cur.Swap(nil)
	if d == nil {
		return 0, nil
	}
	d.cancel()
	select {
	case <-d.done:
	case <-ctx.Done():
		for _, dp := range d.sched.Depths() {
			cut += dp.InFlight
		}
		d.sched.Abort()
		<-d.done
	}
	<-d.reported
	var errs []error
	if d.outbox != nil {
		errs = append(errs, d.outbox.Close())
	}
	return cut, errors.Join(append(errs, d.q.Close())...)
}

// Sched is the running scheduler (nil while the queue is not open here).
func (r *Relay) Sched() *deliver.Scheduler {
	if d := r.cur.Load(); d != nil {
		return d.sched
	}
	return nil
}

// release runs, for a held message, the check it was accepted without,
// through the intake in force (deliver.Gate).
func (r *Relay) release(ctx context.Context, env queue.Envelope) error {
	return r.intake.Load().Release(ctx, env)
}

// queueDepth is the number of queued messages by lane (held ones
// included); held, the held ones.
func (r *Relay) queueDepth() map[string]int {
	if c := r.clusterPart(); c != nil {
		return c.depths.perLane()
	}
	return r.depths(func(d deliver.Depth) int { return d.Ready + d.Deferred + d.InFlight + d.Held })
}

func (r *Relay) held() map[string]int {
	if c := r.clusterPart(); c != nil {
		return c.depths.held()
	}
	return r.depths(func(d deliver.Depth) int { return d.Held })
}

func (r *Relay) depths(count func(deliver.Depth) int) map[string]int {
	out := map[string]int{}
	if s := r.Sched(); s != nil {
		for lane, d := range s.Depths() {
			out[lane] = count(d)
		}
	}
	return out
}

// flow paces the intake by the running scheduler's lanes (Postfix's
// in_flow_delay, see deliver's Pace); in cluster mode, by the cluster's
// backlog of the lane: this node's scheduler holds only its claims.
type flow struct{ r *Relay }

func (f flow) Pace(ctx context.Context, class lanes.Class) time.Duration {
	d := f.r.cur.Load()
	switch {
	case d == nil:
		return 0
	case d.cluster != nil:
		return d.sched.PaceBehind(ctx, class, d.cluster.depths.depths()[string(class)].Ready)
	}
	return d.sched.Pace(ctx, class)
}

// liveQueue is the queue actions of the control socket and the web UI,
// on the queue open now.
type liveQueue struct{ r *Relay }

func (l liveQueue) live() (queue.Queue, *deliver.Scheduler, error) {
	d := l.r.cur.Load()
	if d == nil {
		return nil, nil, fmt.Errorf("%w: the queue is being handed over to another process", queue.ErrClosed)
	}
	return d.q, d.sched, nil
}

func (l liveQueue) List() []queue.Item {
	if q, _, err := l.live(); err == nil {
		return q.List()
	}
	return nil
}

func (l liveQueue) Stats() queue.Stats {
	if q, _, err := l.live(); err == nil {
		return q.Stats()
	}
	return queue.Stats{}
}

func (l liveQueue) Retry(ctx context.Context, id string) (int, error) {
	ctl, err := l.actions()
	if err != nil {
		return 0, err
	}
	return ctl.Retry(ctx, id)
}

func (l liveQueue) Delete(ctx context.Context, id string) error {
	ctl, err := l.actions()
	if err != nil {
		return err
	}
	return ctl.Delete(ctx, id)
}

// actions are the open queue's retry and delete: in cluster mode, the
// whole cluster's.
func (l liveQueue) actions() (control.Queue, error) {
	if c := l.r.clusterPart(); c != nil {
		return c.ctl, nil
	}
	q, s, err := l.live()
	if err != nil {
		return nil, err
	}
	return control.Live{Queue: q, Sched: s}, nil
}
