package control

import (
	"context"

	"github.com/mjrelay/mjrelay/relay/deliver"
	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/spool"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// Live is the queue of the running server: actions go through the scheduler.
type Live struct {
	Spool *spool.Spool
	Sched *deliver.Scheduler
}

func (l Live) List() []queue.Item                          { return l.Spool.List() }
func (l Live) Stats() queue.Stats                          { return l.Spool.Stats() }
func (l Live) Delete(ctx context.Context, id string) error { return l.Sched.Delete(ctx, id) }
func (l Live) Retry(_ context.Context, id string) (int, error) {
	if id != "" {
		if _, err := l.Spool.Get(id); err != nil {
			return 0, err
		}
	}
	return l.Sched.RetryNow(id), nil
}

// Offline is the queue of a stopped server, opened directly.
type Offline struct {
	Spool   *spool.Spool
	Traffic trafficlog.Recorder
}

func (o Offline) List() []queue.Item { return o.Spool.List() }
func (o Offline) Stats() queue.Stats { return o.Spool.Stats() }

// Retry clears the next-attempt time, so the next start delivers at once.
func (o Offline) Retry(ctx context.Context, id string) (int, error) {
	n := 0
	for _, it := range o.Spool.List() {
		if id != "" && it.Envelope.ID != id {
			continue
		}
		it.State.Next = it.Envelope.Received.Add(-1)
		if err := o.Spool.SetState(ctx, it.State); err != nil {
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
	it, err := o.Spool.Get(id)
	if err != nil {
		return err
	}
	if err := o.Spool.Done(ctx, id); err != nil {
		return err
	}
	o.Traffic.Record(trafficlog.Event{Event: trafficlog.Deleted, ID: id, From: it.Envelope.From, To: it.Envelope.To,
		Subject: it.Envelope.Subject, MessageID: it.Envelope.MessageID, Reason: "deleted by an administrator (mjrelay queue delete)"})
	return nil
}
