package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mjrelay/mjrelay/relay/pgqueue"
	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// Scheduler is the node's running scheduler (deliver.Scheduler), for the
// messages this node holds; nil when no node runs here (mjrelay queue
// with the relay stopped).
type Scheduler interface {
	RetryNow(id string) int
	Delete(ctx context.Context, id string) error
}

// Lister is what Control lists: the node's queue (cluster and local), or
// the cluster's alone.
type Lister interface {
	List() []queue.Item
	Stats() queue.Stats
	Get(id string) (queue.Item, error)
}

// Control is the queue actions of `mjrelay queue`, the web UI and the
// API on any node, for the whole cluster (a control.Queue). Retry makes
// due what nobody holds, in the database, and wakes every node's claim
// loop. Delete removes in the database what no live node holds (and
// records it here); a message held here goes through this node's
// scheduler, and one held by another live node is deleted by that node,
// asked over NOTIFY: its scheduler knows whether the attempt under way
// delivered it.
type Control struct {
	Queue   Lister
	PG      *pgqueue.Queue
	Sched   Scheduler // nil: no scheduler here
	Traffic trafficlog.Recorder
	// Wait bounds how long Delete waits for another node to delete a
	// message it holds (default 3 s).
	Wait time.Duration
}

func (c Control) List() []queue.Item { return c.Queue.List() }
func (c Control) Stats() queue.Stats { return c.Queue.Stats() }

// Retry makes a deferred message (all, with id "") due now wherever it is.
func (c Control) Retry(ctx context.Context, id string) (int, error) {
	if id != "" && c.Sched != nil && c.held(id) {
		return c.Sched.RetryNow(id), nil // in this node's local spool
	}
	n, err := c.PG.RetryNow(ctx, id)
	if err == nil && id == "" && c.Sched != nil {
		c.Sched.RetryNow("") // and what this node holds locally
	}
	return n, err
}

// held reports whether id is in this node's local spool.
func (c Control) held(id string) bool {
	if _, err := c.Queue.Get(id); err != nil {
		return false
	}
	_, err := c.PG.Get(id)
	return errors.Is(err, queue.ErrNotFound)
}

// Delete removes a message from the cluster's queue (or this node's local
// spool) for good.
func (c Control) Delete(ctx context.Context, id string) error {
	if c.Sched != nil && c.held(id) {
		return c.Sched.Delete(ctx, id)
	}
	env, err := c.PG.Delete(ctx, id)
	if err == nil {
		c.Traffic.Record(trafficlog.NewDeleted(env, "deleted by an administrator"))
		return nil
	}
	var he *pgqueue.HeldError
	if !errors.As(err, &he) {
		return err
	}
	if he.Instance == c.PG.Instance() && c.Sched != nil {
		return c.Sched.Delete(ctx, id)
	}
	if err := c.PG.AskDelete(ctx, he.Instance, id); err != nil {
		return err
	}
	wait := c.Wait
	if wait <= 0 {
		wait = 3 * time.Second
	}
	for deadline := time.Now().Add(wait); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, err := c.PG.Get(id); errors.Is(err, queue.ErrNotFound) {
			return nil // deleted by the node that held it
		}
	}
	return fmt.Errorf("%w: it is removed there if this attempt does not deliver it", he)
}
