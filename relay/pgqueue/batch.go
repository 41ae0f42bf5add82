package pgqueue

import (
	"context"
	"sync"
)

// batcher is a group commit: callers hand it one item each and wait; one
// goroutine runs everything that waits as one statement (one transaction,
// one WAL flush), and while that commits the next batch gathers. So 32
// sessions pay for one commit, not 32, as with the spool's fsync.
type batcher[T any] struct {
	in   chan *call[T]
	run  func(ctx context.Context, items []T) []error
	max  int
	stop chan struct{}
	wg   sync.WaitGroup
}

type call[T any] struct {
	item T
	done chan error
}

// newBatcher starts workers goroutines that each run up to max items per
// statement.
func newBatcher[T any](workers, max int, run func(ctx context.Context, items []T) []error) *batcher[T] {
	b := &batcher[T]{in: make(chan *call[T], 4*max), run: run, max: max, stop: make(chan struct{})}
	for range workers {
		b.wg.Add(1)
		go b.loop()
	}
	return b
}

// do runs item in the next batch and returns its result; ctx bounds the
// wait (the statement may still commit after ctx ends: see Put).
func (b *batcher[T]) do(ctx context.Context, item T) error {
	c := &call[T]{item: item, done: make(chan error, 1)}
	select {
	case b.in <- c:
	case <-b.stop:
		return errStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-c.done:
		return err
	case <-b.stop:
		// The workers answer the batch they run, then exit.
		b.wg.Wait()
		select {
		case err := <-c.done:
			return err
		default:
			return errStopped
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *batcher[T]) loop() {
	defer b.wg.Done()
	calls := make([]*call[T], 0, b.max)
	items := make([]T, 0, b.max)
	for {
		var first *call[T]
		select {
		case first = <-b.in:
		case <-b.stop:
			return
		}
		calls, items = append(calls[:0], first), append(items[:0], first.item)
	fill:
		for len(calls) < b.max {
			select {
			case c := <-b.in:
				calls, items = append(calls, c), append(items, c.item)
			default:
				break fill
			}
		}
		// The statement is not cut short by the callers' contexts: once
		// sent, its outcome is what it is, and each caller hears it if
		// it still waits.
		errs := b.run(context.Background(), items)
		for i, c := range calls {
			c.done <- errs[i]
		}
	}
}

// close stops the workers once the batches in progress are answered;
// callers that have not been taken in get errStopped.
func (b *batcher[T]) close() {
	close(b.stop)
	b.wg.Wait()
	for {
		select {
		case c := <-b.in:
			c.done <- errStopped
		default:
			return
		}
	}
}
