package pgstore

import (
	"context"
	"errors"
	"math/rand/v2"
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
	// keyN is the number the next new key adds to its millisecond: it
	// starts at random, so that two nodes' keys of one millisecond differ
	// (a clash is retried with the next number).
	keyN uint64
}

func newWriter(s *Store) *writer {
	ctx, cancel := context.WithCancel(context.Background())
	return &writer{s: s, ctx: ctx, cancel: cancel, keyN: rand.Uint64N(store.KeyPerMS)}
}

func (w *writer) run() {
	defer close(w.s.done)
	defer w.cancel()
	pruned := make(chan struct{})
	go w.s.pruneEvery(w.ctx, pruned)
	defer func() { <-pruned }()
	batch := make([]*entry, 0, maxBatch)
	for {
		select {
		case en := <-w.s.in:
			w.process(w.gather(append(batch[:0], en)))
		case <-w.s.quit:
			for {
				batch = w.collect(batch[:0])
				if len(batch) == 0 {
					return
				}
				w.process(batch)
			}
		}
	}
}

// gather collects entries for up to gatherFor (or maxBatch, or until the
// store closes, or a Flush waits).
func (w *writer) gather(batch []*entry) []*entry {
	if batch[0].flush != nil {
		return w.collect(batch)
	}
	t := time.NewTimer(gatherFor)
	defer t.Stop()
	for len(batch) < maxBatch {
		select {
		case en := <-w.s.in:
			batch = append(batch, en)
			if en.flush != nil {
				return w.collect(batch) // someone waits for this
			}
		case <-t.C:
			return batch
		case <-w.s.quit:
			return batch
		}
	}
	return batch
}

// collect adds what is waiting, without blocking, up to maxBatch.
func (w *writer) collect(batch []*entry) []*entry {
	for len(batch) < maxBatch {
		select {
		case en := <-w.s.in:
			batch = append(batch, en)
		default:
			return batch
		}
	}
	return batch
}

// process stores a batch, then answers its barriers (a Prune barrier
// prunes first, beside the writer).
func (w *writer) process(batch []*entry) {
	w.s.inFlight.Store(int64(len(batch)))
	var records, raws = make([]*entry, 0, len(batch)), make([][]byte, 0)
	for _, en := range batch {
		if en.flush == nil {
			records = append(records, en)
		}
	}
	for _, en := range records {
		raws = append(raws, en.ev.Raw)
	}
	for i, body := range store.Deflate(raws) {
		records[i].body = body
	}
	if len(records) > 0 {
		w.store(records)
	}
	for _, en := range records {
		if n := len(en.ev.Raw); n > 0 {
			w.s.pendingBody.Add(-int64(n))
		}
		en.ev.Raw, en.body = nil, nil
	}
	w.s.inFlight.Store(0)
	for _, en := range batch {
		switch {
		case en.flush == nil:
		case en.prune:
			go func() {
				if err := w.s.pruneNow(w.ctx, true); err != nil {
					w.logErr("pruning the traffic store failed", err)
				}
				close(en.flush)
			}()
		default:
			close(en.flush)
		}
	}
}

// store commits records, retrying while the database is unreachable (or
// two nodes' batches deadlocked), until Close gives up; a batch the
// database refuses is split to find the event it refuses, which is lost
// and counted.
func (w *writer) store(records []*entry) {
	backoff := 100 * time.Millisecond
	for {
		err := w.commit(records)
		switch {
		case err == nil:
			return
		case w.ctx.Err() != nil:
			w.s.drop(uint64(len(records)))
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
			w.s.writeErrors.Add(1)
			w.logErr("cannot record an event in the traffic store: it is missing from the inspection record", err,
				"event", records[0].ev.Event, "id", records[0].ev.ID)
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
	w.keyN++
	return ms*store.KeyPerMS + int64(w.keyN%store.KeyPerMS)
}
