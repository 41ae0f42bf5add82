package pgstore

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/mjrelay/mjrelay/relay/pg"
	"github.com/mjrelay/mjrelay/relay/store"
)

// maxBatch bounds one transaction, so that a backlog is committed in
// pieces and readers see progress.
const maxBatch = 8192

// gatherFor is how long the writer lets a batch fill after its first
// event: the store observes, and a tenth of a second behind costs nobody
// anything, while big transactions cost a fraction of many small ones.
const gatherFor = 100 * time.Millisecond

// writer owns the batches; only its goroutine runs them.
type writer struct {
	s *Store
	// ctx ends when Close gives up on the database.
	ctx    context.Context
	cancel context.CancelFunc
	// keyN is the number the last new key added to its millisecond: it
	// starts at random, so that two nodes' keys of one millisecond differ
	// (a clash is retried with the next number).
	keyN atomic.Uint64
}

func newWriter(s *Store) *writer {
	ctx, cancel := context.WithCancel(context.Background())
	w := &writer{s: s, ctx: ctx, cancel: cancel}
	w.keyN.Store(rand.Uint64N(store.KeyPerMS))
	return w
}

func (w *writer) run() {
	defer close(w.s.Done)
	defer w.cancel()
	pruned := make(chan struct{})
	go w.s.pruneEvery(w.ctx, pruned)
	defer func() { <-pruned }()
	batch := make([]*store.Entry, 0, maxBatch)
	for {
		select {
		case en := <-w.s.C:
			w.process(w.s.Gather(append(batch[:0], en), maxBatch, gatherFor))
		case <-w.s.Quit:
			for {
				batch = w.s.Collect(batch[:0], maxBatch)
				if len(batch) == 0 {
					return
				}
				w.process(batch)
			}
		}
	}
}

// process stores a batch, then answers its barriers (a Prune barrier
// prunes first, beside the writer).
func (w *writer) process(batch []*store.Entry) {
	w.s.InFlight.Store(int64(len(batch)))
	records := make([]*store.Entry, 0, len(batch))
	for _, en := range batch {
		if en.Flush == nil {
			records = append(records, en)
		}
	}
	w.s.Deflate(records)
	if len(records) > 0 {
		w.store(records)
	}
	w.s.Release(records)
	for _, en := range batch {
		switch {
		case en.Flush == nil:
		case en.Prune:
			go func() {
				if err := w.s.pruneNow(w.ctx, true); err != nil {
					w.logErr("pruning the traffic store failed", err)
				}
				close(en.Flush)
			}()
		default:
			close(en.Flush)
		}
	}
}

// store commits records, retrying while the database is unreachable (or
// two nodes' batches deadlocked), until Close gives up; a batch the
// database refuses is split to find the event it refuses, which is lost
// and counted.
func (w *writer) store(records []*store.Entry) {
	backoff := 100 * time.Millisecond
	for {
		err := w.commit(records)
		switch {
		case err == nil:
			return
		case w.ctx.Err() != nil:
			w.s.Drop(uint64(len(records)))
			w.logErr("traffic store closed while PostgreSQL did not answer: events dropped", err, "events", len(records))
			return
		case pg.Temporary(err) || errors.Is(err, errRetry):
			w.logErr("traffic store: PostgreSQL did not take a batch; retrying (events that do not fit the buffer meanwhile are dropped)", err,
				"events", len(records))
			select {
			case <-time.After(backoff):
			case <-w.ctx.Done():
			}
			backoff = min(2*backoff, 5*time.Second)
		case len(records) > 1:
			half := len(records) / 2
			w.store(records[:half])
			w.store(records[half:])
			return
		default:
			w.s.WriteError()
			w.logErr("cannot record an event in the traffic store: it is missing from the inspection record", err,
				"event", records[0].Ev.Event, "id", records[0].Ev.ID)
			return
		}
	}
}

func (w *writer) logErr(msg string, err error, args ...any) { w.s.logErr(msg, err, args...) }

// logErr logs an error, at most one every 10 seconds.
func (s *Store) logErr(msg string, err error, args ...any) {
	now, last := time.Now().UnixNano(), s.lastErrLog.Load()
	if now-last < int64(10*time.Second) || !s.lastErrLog.CompareAndSwap(last, now) {
		return
	}
	s.log.Error(msg, append(args, "err", err)...)
}

// newKey returns a new message key for a message received at ms.
func (w *writer) newKey(ms int64) int64 {
	return ms*store.KeyPerMS + int64(w.keyN.Add(1)%store.KeyPerMS)
}
