package control

import (
	"context"

	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// Scheduler is what the live queue's actions go through: the running
// scheduler (deliver.Scheduler), which knows the messages in flight.
type Scheduler interface {
	// RetryNow makes a deferred message (or all, with id "") due now; it
	// returns how many.
	RetryNow(id string) int
	// Delete removes a message from the queue for good.
	Delete(ctx context.Context, id string) error
}

// Live is the queue of the running server: actions go through the scheduler.
type Live struct {
	Queue queue.Queue
	Sched Scheduler
}

func (l Live) List() []queue.Item                          { return l.Queue.List() }
func (l Live) Stats() queue.Stats                          { return l.Queue.Stats() }
func (l Live) Delete(ctx context.Context, id string) error { return l.Sched.Delete(ctx, id) }
func (l Live) Retry(_ context.Context, id string) (int, error) {
	if id != "" {
		if _, err := l.Queue.Get(id); err != nil {
			return 0, err
		}
	}
	return l.Sched.RetryNow(id), nil
}

// Offline is the queue of a stopped server, opened directly.
type Offline struct {
	Queue   queue.Queue
	Traffic trafficlog.Recorder
}

func (o Offline) List() []queue.Item { return o.Queue.List() }
func (o Offline) Stats() queue.Stats { return o.Queue.Stats() }

// Retry clears the next-attempt time, so the next start delivers at once.
func (o Offline) Retry(ctx context.Context, id string) (int, error) {
	n := 0
	for _, it := range o.Queue.List() {
		if id != "" && it.Envelope.ID != id {
			continue
		}
		it.State.Next = it.Envelope.Received.Add(-1)
		if err := o.Queue.SetState(ctx, it.State); err != nil {
			return n, err
		}
		n++
	}
	if id != "" && n == 0 {
		return 0, queue.ErrNotFound
	}
	return n, nil
}

func (o Offline) Delete(ctx context.Context, id string) error {
	it, err := o.Queue.Get(id)
	if err != nil {
		return err
	}
	if err := o.Queue.Done(ctx, id); err != nil {
		return err
	}
	o.Traffic.Record(trafficlog.NewDeleted(it.Envelope, "deleted by an administrator (mjrelay queue delete)"))
	return nil
}
