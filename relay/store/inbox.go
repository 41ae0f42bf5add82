package store

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mjrelay/mjrelay/mailjet/webhook"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// Entry is one unit of work for a store's writer: a relay event, a
// Mailjet event, or a barrier (Flush, Prune).
type Entry struct {
	Ev trafficlog.Event
	MJ *webhook.Event
	// Flush marks a barrier: it is closed once everything recorded before
	// it is stored (and, with Prune, pruned).
	Flush chan struct{}
	Prune bool
	// Body is Ev.Raw deflated, Attachments its attachment count (set by
	// the writer).
	Body        []byte
	Attachments int
}

// Inbox is the front of a store's writer, what Record, RecordMailjet,
// Flush and Prune hand their work to: a buffered channel (C) that one
// writer goroutine drains in batches. Record never waits: an event that
// finds the buffer full is dropped and counted (Health), and logged at most
// once a minute; the inspection record of its message is then incomplete,
// the message itself is not affected. Raw bodies waiting for the writer
// are capped too; past the cap the event is kept without its body.
// RecordMailjet waits for room instead, so that the webhook can make
// Mailjet retry.
type Inbox struct {
	C chan *Entry
	// Quit is closed when the store closes; the writer then stores what
	// is left and closes Done.
	Quit chan struct{}
	Done chan struct{}
	// InFlight are the entries the writer took and has not stored yet.
	InFlight atomic.Int64

	o             Options
	log           *slog.Logger
	closed        atomic.Bool
	closeOnce     sync.Once
	dropped       atomic.Uint64
	bodiesDropped atomic.Uint64
	writeErrors   atomic.Uint64
	pendingBody   atomic.Int64
	lastDropLog   atomic.Int64 // unix seconds
	loggedDropped atomic.Uint64
}

// NewInbox returns the inbox of a store with options o (WithDefaults
// applied); a read-only store's takes nothing.
func NewInbox(o Options, log *slog.Logger) *Inbox {
	q := &Inbox{C: make(chan *Entry, o.Buffer), Quit: make(chan struct{}), Done: make(chan struct{}), o: o, log: log}
	if o.ReadOnly {
		q.closed.Store(true)
		close(q.Done)
	}
	return q
}

// WantsBodies reports whether received events should carry the raw
// message.
func (q *Inbox) WantsBodies() bool { return q.o.KeepBodies > 0 && !q.closed.Load() }

// Record queues an event for the writer; it never waits.
func (q *Inbox) Record(e trafficlog.Event) {
	if e.Time.IsZero() {
		e.Time = q.o.Now()
	}
	if q.o.KeepBodies <= 0 {
		e.Raw = nil
	}
	if q.closed.Load() {
		q.Drop(1)
		return
	}
	en := &Entry{Ev: e}
	n := int64(len(e.Raw))
	if n > 0 && q.pendingBody.Add(n) > q.o.MaxPendingBodyBytes {
		q.pendingBody.Add(-n)
		en.Ev.Raw = nil
		q.bodiesDropped.Add(1)
		n = 0
	}
	select {
	case q.C <- en:
	default:
		q.pendingBody.Add(-n)
		q.Drop(1)
	}
}

// Drop counts n events lost, and logs it at most once a minute.
func (q *Inbox) Drop(n uint64) {
	total := q.dropped.Add(n)
	now := q.o.Now().Unix()
	last := q.lastDropLog.Load()
	if now-last >= 60 && q.lastDropLog.CompareAndSwap(last, now) {
		prev := q.loggedDropped.Swap(total)
		q.log.Warn("traffic store buffer full: events dropped from the inspection record (mail is not affected)",
			"dropped", total-prev, "dropped_total", total)
	}
}

// WriteError counts a failed write (its events are lost; the writer logs
// why).
func (q *Inbox) WriteError() { q.writeErrors.Add(1) }

// RecordMailjet queues Mailjet webhook events. Unlike Record it waits for
// room in the buffer until ctx ends (ErrClosed after Close).
func (q *Inbox) RecordMailjet(ctx context.Context, evs []webhook.Event) error {
	for i := range evs {
		if q.closed.Load() {
			return ErrClosed
		}
		ev := evs[i] // the writer owns its copy
		select {
		case q.C <- &Entry{MJ: &ev}:
		case <-ctx.Done():
			return ctx.Err()
		case <-q.Quit:
			return ErrClosed
		}
	}
	return nil
}

// Flush waits until everything recorded before it is stored.
func (q *Inbox) Flush(ctx context.Context) error { return q.barrier(ctx, false) }

// Prune waits until everything recorded before it is stored and the store
// pruned.
func (q *Inbox) Prune(ctx context.Context) error { return q.barrier(ctx, true) }

func (q *Inbox) barrier(ctx context.Context, prune bool) error {
	if q.closed.Load() {
		return nil
	}
	ch := make(chan struct{})
	select {
	case q.C <- &Entry{Flush: ch, Prune: prune}:
	case <-ctx.Done():
		return ctx.Err()
	case <-q.Done:
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-q.Done:
		return nil
	}
}

// Health returns what was dropped, what waits, and the failed writes.
func (q *Inbox) Health() Health {
	return Health{DroppedEvents: q.dropped.Load(), DroppedBodies: q.bodiesDropped.Load(),
		Pending: len(q.C) + int(q.InFlight.Load()), WriteErrors: q.writeErrors.Load()}
}

// Close stops taking entries and waits until the writer has stored the
// rest (it reports whether it was open). Records after Close are dropped.
func (q *Inbox) Close() (wasOpen bool) {
	q.closeOnce.Do(func() {
		if wasOpen = !q.closed.Load(); wasOpen {
			q.closed.Store(true)
			close(q.Quit)
			<-q.Done
		}
	})
	return wasOpen
}

// Gather collects entries after first for up to window (or max, or until
// the store closes, or a barrier waits), for one batch.
func (q *Inbox) Gather(batch []*Entry, max int, window time.Duration) []*Entry {
	if batch[len(batch)-1].Flush != nil {
		return q.Collect(batch, max)
	}
	t := time.NewTimer(window)
	defer t.Stop()
	for len(batch) < max {
		select {
		case en := <-q.C:
			batch = append(batch, en)
			if en.Flush != nil {
				return q.Collect(batch, max) // someone waits for this
			}
		case <-t.C:
			return batch
		case <-q.Quit:
			return batch
		}
	}
	return batch
}

// Collect adds what is waiting, without blocking, up to max.
func (q *Inbox) Collect(batch []*Entry, max int) []*Entry {
	for len(batch) < max {
		select {
		case en := <-q.C:
			batch = append(batch, en)
		default:
			return batch
		}
	}
	return batch
}

// Deflate deflates the batch's raw bodies and counts their attachments
// (Entry.Body, Entry.Attachments) before it is stored.
func (q *Inbox) Deflate(batch []*Entry) {
	raw := make([][]byte, len(batch))
	for i, en := range batch {
		raw[i] = en.Ev.Raw
	}
	bodies, attachments := Deflate(raw)
	for i, body := range bodies {
		batch[i].Body, batch[i].Attachments = body, attachments[i]
	}
}

// Release lets go of the batch's raw bodies once it is stored (or lost),
// and of InFlight.
func (q *Inbox) Release(batch []*Entry) {
	q.InFlight.Store(0)
	for _, en := range batch {
		if n := len(en.Ev.Raw); n > 0 {
			q.pendingBody.Add(-int64(n))
		}
		en.Ev.Raw, en.Body = nil, nil
	}
}
