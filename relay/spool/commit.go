package spool

import (
	"context"
	"fmt"
	"github.com/mjrelay/mjrelay/relay/queue"
	"os"
	"syscall"
	"time"
)

// op is one caller's records waiting for the committer.
type op struct {
	parts [][]byte // written one after the other
	size  int
	// msgs is how many new messages the records add to the queue (room is
	// reserved for their completions).
	msgs int
	// apply runs under s.mu once the data is durable; base is where the
	// data starts in sg.
	apply func(sg *segment, base int64)
	done  chan error
	// lazy data is written at once but made durable with the next batch
	// that needs it, or within lazySync (completions: see Done).
	lazy bool
	// keep: if the write fails, the committer keeps the op and writes it
	// again until it succeeds (completions); the caller is told nil.
	keep bool
	// recycle asks the committer to empty the active segment if nothing
	// in it is needed any more (see recycle).
	recycle bool
}

const (
	lazySync      = 100 * time.Millisecond
	maxBatchBytes = 16 << 20
	// copyLimit is the largest batch gathered into one buffer for a single
	// write call.
	copyLimit = 1 << 20
	// keptRetry is how soon completions the disk refused are written again
	// (doubling up to keptRetryMax).
	keptRetry    = 250 * time.Millisecond
	keptRetryMax = 5 * time.Second
)

// submit hands data to the committer and waits until it is durable (or the
// context ends; the write then still happens, the caller just stops waiting).
func (s *Spool) submit(ctx context.Context, data []byte, apply func(*segment, int64)) error {
	return s.submitOp(ctx, &op{parts: [][]byte{data}, apply: apply, done: make(chan error, 1)})
}

// submitOp hands o to the committer and waits until it is written (and
// durable unless it is lazy).
func (s *Spool) submitOp(ctx context.Context, o *op) error {
	for _, p := range o.parts {
		o.size += len(p)
	}
	select {
	case s.ops <- o:
	case <-s.quit:
		return queue.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-o.done:
		return err
	case <-s.stopped:
		select {
		case err := <-o.done:
			return err
		default:
			return queue.ErrClosed
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// committer writes batches of ops: one write and one fdatasync per batch.
// While it syncs, new ops queue up in s.ops and form the next batch.
func (s *Spool) committer() {
	defer s.wg.Done()
	defer close(s.stopped)
	c := &commitState{batch: make([]*op, 0, 256)}
	var lazyDue, keptDue <-chan time.Time
	backoff := keptRetry
	for {
		var first *op
		select {
		case first = <-s.ops:
		case <-lazyDue:
			s.syncLazy()
			lazyDue = nil
			continue
		case <-keptDue:
			keptDue = nil
			if s.writeKept() {
				backoff = keptRetry
			} else {
				backoff = min(2*backoff, keptRetryMax)
			}
		case <-s.quit:
			// Drain what was submitted before Close.
			select {
			case first = <-s.ops:
			default:
				s.closeKept()
				s.syncLazy()
				return
			}
		}
		if first != nil {
			if first.recycle {
				s.recycle()
				first.done <- nil
				continue
			}
			c.run(s, first)
		}
		switch {
		case s.unsynced == nil:
			lazyDue = nil
		case lazyDue == nil:
			lazyDue = time.After(lazySync)
		}
		if len(s.kept) > 0 && keptDue == nil {
			keptDue = time.After(backoff)
		}
	}
}

// commitState is the committer's reusable batch and buffer.
type commitState struct {
	buf   []byte
	batch []*op
}

// run gathers a batch starting with first, writes it and answers its ops.
func (c *commitState) run(s *Spool, first *op) {
	c.batch = append(c.batch[:0], first)
	size, lazy, msgs := first.size, first.lazy, first.msgs
fill:
	for size < maxBatchBytes {
		select {
		case o := <-s.ops:
			if o.recycle {
				o.done <- nil // not now: the batch is being written
				continue
			}
			c.batch = append(c.batch, o)
			size += o.size
			lazy = lazy && o.lazy
			msgs += o.msgs
		default:
			break fill
		}
	}
	// Small batches are written with one call from a buffer; a large
	// one part by part, so that a big message is not copied again.
	var parts [][]byte
	if size <= copyLimit {
		c.buf = c.buf[:0]
		for _, o := range c.batch {
			for _, p := range o.parts {
				c.buf = append(c.buf, p...)
			}
		}
		parts = [][]byte{c.buf}
	} else {
		for _, o := range c.batch {
			parts = append(parts, o.parts...)
		}
	}
	sg, base, err := s.write(parts, size, !lazy, lazy, msgs)
	if err != nil {
		s.log.Error("spool write failed", "err", err, "records", len(c.batch))
		for _, o := range c.batch {
			if o.keep {
				s.kept = append(s.kept, o)
				o.done <- nil
			} else {
				o.done <- err
			}
		}
	} else {
		s.applyAll(c.batch, sg, base)
	}
	if cap(c.buf) > 2*copyLimit {
		c.buf = nil
	}
}

// applyAll applies written ops (in order from base) and answers them.
func (s *Spool) applyAll(ops []*op, sg *segment, base int64) {
	s.mu.Lock()
	off := base
	for _, o := range ops {
		o.apply(sg, off)
		off += int64(o.size)
	}
	s.mu.Unlock()
	for _, o := range ops {
		o.done <- nil
	}
}

// writeKept writes the completions the disk refused before; it reports
// whether they are written now.
func (s *Spool) writeKept() bool {
	if len(s.kept) == 0 {
		return true
	}
	var data []byte
	for _, o := range s.kept {
		for _, p := range o.parts {
			data = append(data, p...)
		}
	}
	sg, base, err := s.write([][]byte{data}, len(data), false, true, 0)
	if err != nil {
		return false
	}
	ops := s.kept
	s.kept = nil
	for _, o := range ops {
		o.done = make(chan error, 1) // the first answer was taken
	}
	s.applyAll(ops, sg, base)
	s.log.Info("spool: completions the disk refused are written now", "completions", len(ops))
	return true
}

// closeKept makes a last attempt at the kept completions when the spool
// closes.
func (s *Spool) closeKept() {
	if len(s.kept) > 0 && !s.writeKept() {
		s.log.Error("spool: completions could not be written before the queue closed; those messages will be delivered again after the next start",
			"completions", len(s.kept))
	}
}

// write appends parts (size bytes in all) to the active segment and, with
// sync, makes them and any lazy data before them durable. Only the
// committer calls it. Messages and states start a new segment when the
// active one is full; lazy data (completions) never does, and lands in room
// reserved for it (see reserve). A write the disk refuses leaves the
// segment as it was and comes back wrapping ErrFull.
func (s *Spool) write(parts [][]byte, size int, sync, lazy bool, msgs int) (*segment, int64, error) {
	s.mu.Lock()
	var sg *segment
	if n := len(s.segs); n > 0 {
		sg = s.segs[n-1]
	}
	room := s.completionRoom(msgs)
	s.mu.Unlock()
	if sg == nil || (!lazy && sg.size > 0 && sg.size+int64(size) > s.opts.SegmentSize) {
		s.syncLazy() // before the segment can be closed by maintenance
		next, err := s.rotate(int64(size) + room)
		if err != nil {
			return nil, 0, err
		}
		if sg != nil {
			s.releaseTail(sg)
		}
		sg = next
	}
	if !lazy {
		if err := s.reserve(sg, sg.size+int64(size)+room); err != nil {
			return nil, 0, err
		}
	}
	base := sg.size
	off := base
	for _, p := range parts {
		if _, err := sg.f.WriteAt(p, off); err != nil {
			sg.f.Truncate(base)
			return nil, 0, spaceErr(err)
		}
		off += int64(len(p))
	}
	if !sync {
		s.unsynced = sg
	} else if err := syscall.Fdatasync(int(sg.f.Fd())); err != nil {
		return nil, 0, s.syncFailed(sg, base, err)
	} else {
		s.unsynced = nil // same segment: synced with it
	}
	if end := base + int64(size); end > sg.allocEnd {
		s.writtenSince.Add(end - max(base, sg.allocEnd))
		sg.allocEnd = end
	}
	s.mu.Lock()
	sg.size += int64(size)
	s.diskLen += int64(size)
	s.mu.Unlock()
	return sg, base, nil
}

// spaceErr marks a full disk as ErrFull (the client is told 452 4.3.1).
func spaceErr(err error) error {
	if isNoSpace(err) {
		return fmt.Errorf("%w: %v", queue.ErrFull, err)
	}
	return fmt.Errorf("spool: %w", err)
}

// syncFailed cuts the segment back to its last good size and, since after a
// failed fsync the kernel's view of the file is unknown, moves writing to a
// new segment if one can be made.
func (s *Spool) syncFailed(sg *segment, base int64, err error) error {
	sg.f.Truncate(base)
	if sg.size > 0 {
		if _, rerr := s.rotate(0); rerr != nil {
			s.log.Error("spool: cannot start a new segment", "err", rerr)
		} else {
			s.releaseTail(sg)
		}
	}
	return spaceErr(err)
}

// rotate creates the next segment with room for need bytes and makes its
// directory entry durable. A segment that cannot be made is not left
// behind.
func (s *Spool) rotate(need int64) (*segment, error) {
	s.mu.Lock()
	seq := uint64(1)
	if n := len(s.segs); n > 0 {
		seq = s.segs[n-1].seq + 1
	}
	s.mu.Unlock()
	p := segPath(s.dir, seq)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return nil, spaceErr(err)
	}
	sg := &segment{seq: seq, path: p, f: f}
	if err = s.reserve(sg, need); err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		f.Close()
		os.Remove(p)
		return nil, spaceErr(err)
	}
	s.mu.Lock()
	s.segs = append(s.segs, sg)
	s.mu.Unlock()
	return sg, nil
}

// recycle empties the active segment in place when it is the only one and
// no message in it is still queued: everything it holds is dead, and
// truncating it frees the disk without needing room for a new file (a queue
// that filled the disk in one segment would otherwise keep that space).
func (s *Spool) recycle() {
	s.mu.Lock()
	if len(s.segs) != 1 || s.segs[0].live != 0 || s.segs[0].readers != 0 || len(s.kept) > 0 {
		s.mu.Unlock()
		return
	}
	sg := s.segs[0]
	s.mu.Unlock()
	if err := sg.f.Truncate(0); err != nil {
		s.log.Error("spool: cannot empty the delivered segment", "segment", sg.path, "err", err)
		return
	}
	if err := syscall.Fdatasync(int(sg.f.Fd())); err != nil {
		s.log.Error("spool: cannot sync the emptied segment", "segment", sg.path, "err", err)
	}
	if s.unsynced == sg {
		s.unsynced = nil
	}
	s.mu.Lock()
	s.diskLen -= sg.size
	sg.size, sg.allocEnd, sg.liveLen = 0, 0, 0
	s.mu.Unlock()
}

// syncLazy makes lazily written data durable. Only the committer calls it.
func (s *Spool) syncLazy() {
	if s.unsynced == nil {
		return
	}
	if err := syscall.Fdatasync(int(s.unsynced.f.Fd())); err != nil {
		// Only completions are lazy: at worst a delivered message is
		// delivered again after a crash.
		s.log.Error("spool: cannot sync completions", "segment", s.unsynced.path, "err", err)
	}
	s.unsynced = nil
}
