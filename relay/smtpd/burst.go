package smtpd

import (
	"sync"
	"time"
)

// burst passes on the first of a kind of thing (a log line, a refusal
// record) at once and then, for as long as more keep coming, one per
// interval that stands for all of them: a flood of the same thing costs a
// line or a record per interval, not one each.
type burst[T any] struct {
	every time.Duration
	emit  func(v T, n int) // v stands for n of its kind
	after func(d time.Duration, f func())

	mu    sync.Mutex
	kinds map[string]*held[T]
}

// held is what came of a kind since it was last passed on.
type held[T any] struct {
	n    int
	last T
}

func newBurst[T any](every time.Duration, emit func(v T, n int)) *burst[T] {
	return &burst[T]{every: every, emit: emit, kinds: map[string]*held[T]{},
		after: func(d time.Duration, f func()) { time.AfterFunc(d, f) }}
}

// add passes v on, or holds it to be counted in the next one of its kind.
func (b *burst[T]) add(kind string, v T) {
	b.mu.Lock()
	if h := b.kinds[kind]; h != nil {
		h.n++
		h.last = v
		b.mu.Unlock()
		return
	}
	b.kinds[kind] = &held[T]{}
	b.mu.Unlock()
	b.emit(v, 1)
	b.after(b.every, func() { b.tick(kind) })
}

// tick ends kind's interval: what it held is passed on as one, and a new
// interval starts; an interval that held nothing ends the burst.
func (b *burst[T]) tick(kind string) {
	b.mu.Lock()
	h := b.kinds[kind]
	if h == nil || h.n == 0 {
		delete(b.kinds, kind)
		b.mu.Unlock()
		return
	}
	v, n := h.last, h.n
	h.n = 0
	b.mu.Unlock()
	b.emit(v, n)
	b.after(b.every, func() { b.tick(kind) })
}

// flush passes on everything held (at shutdown).
func (b *burst[T]) flush() {
	b.mu.Lock()
	var out []*held[T]
	for kind, h := range b.kinds {
		if h.n > 0 {
			out = append(out, &held[T]{n: h.n, last: h.last})
		}
		delete(b.kinds, kind)
	}
	b.mu.Unlock()
	for _, h := range out {
		b.emit(h.last, h.n)
	}
}
