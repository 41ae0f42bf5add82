package spool

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"time"
)

// op is one caller's records waiting for the committer.
type op struct {
	parts [][]byte // written one after the other
	size  int
	// apply runs under s.mu once the data is durable; base is where the
	// data starts in sg.
	apply func(sg *segment, base int64)
	done  chan error
	// lazy data is written at once but made durable with the next batch
	// that needs it, or within lazySync (completions: see Done).
	lazy bool
}

const (
	lazySync      = 100 * time.Millisecond
	maxBatchBytes = 16 << 20
	// copyLimit is the largest batch gathered into one buffer for a single
	// write call.
	copyLimit = 1 << 20
)

// submit hands data to the committer and waits until it is durable (or the
// context ends; the write then still happens, the caller just stops waiting).
func (s *Spool) submit(ctx context.Context, data []byte, apply func(*segment, int64)) error {
	return s.submitParts(ctx, [][]byte{data}, apply)
}

// submitParts is submit for data in parts (not concatenated first).
func (s *Spool) submitParts(ctx context.Context, parts [][]byte, apply func(*segment, int64)) error {
	return s.submitOp(ctx, &op{parts: parts, apply: apply, done: make(chan error, 1)})
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
		return ErrClosed
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
			return ErrClosed
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
	var buf []byte
	batch := make([]*op, 0, 256)
	var lazyDue <-chan time.Time // set while lazy data is not yet synced
	for {
		var first *op
		select {
		case first = <-s.ops:
		case <-lazyDue:
			s.syncLazy()
			lazyDue = nil
			continue
		case <-s.quit:
			// Drain what was submitted before Close.
			select {
			case first = <-s.ops:
			default:
				s.syncLazy()
				return
			}
		}
		batch = append(batch[:0], first)
		size, lazy := first.size, first.lazy
	fill:
		for size < maxBatchBytes {
			select {
			case o := <-s.ops:
				batch = append(batch, o)
				size += o.size
				lazy = lazy && o.lazy
			default:
				break fill
			}
		}
		// Small batches are written with one call from a buffer; a large
		// one part by part, so that a big message is not copied again.
		var parts [][]byte
		if size <= copyLimit {
			buf = buf[:0]
			for _, o := range batch {
				for _, p := range o.parts {
					buf = append(buf, p...)
				}
			}
			parts = [][]byte{buf}
		} else {
			for _, o := range batch {
				parts = append(parts, o.parts...)
			}
		}
		sg, base, err := s.write(parts, size, !lazy)
		switch {
		case s.unsynced == nil:
			lazyDue = nil
		case lazyDue == nil:
			lazyDue = time.After(lazySync)
		}
		if err != nil {
			s.log.Error("spool write failed", "err", err)
		} else {
			s.mu.Lock()
			off := base
			for _, o := range batch {
				o.apply(sg, off)
				off += int64(o.size)
			}
			s.mu.Unlock()
		}
		for _, o := range batch {
			o.done <- err
		}
		if cap(buf) > 2*copyLimit {
			buf = nil
		}
	}
}

// write appends parts (size bytes in all) to the active segment (rotating
// first if it is full) and, with sync, makes them and any lazy data before
// them durable. Only the committer calls it.
func (s *Spool) write(parts [][]byte, size int, sync bool) (*segment, int64, error) {
	s.mu.Lock()
	var sg *segment
	if n := len(s.segs); n > 0 {
		sg = s.segs[n-1]
	}
	s.mu.Unlock()
	if sg == nil || (sg.size > 0 && sg.size+int64(size) > s.opts.SegmentSize) {
		s.syncLazy() // before the segment can be closed by maintenance
		var err error
		if sg, err = s.rotate(); err != nil {
			return nil, 0, err
		}
	}
	base := sg.size
	off := base
	for _, p := range parts {
		if _, err := sg.f.WriteAt(p, off); err != nil {
			return nil, 0, s.writeFailed(sg, base, err)
		}
		off += int64(len(p))
	}
	if !sync {
		s.unsynced = sg
	} else if err := syscall.Fdatasync(int(sg.f.Fd())); err != nil {
		return nil, 0, s.writeFailed(sg, base, err)
	} else {
		s.unsynced = nil // same segment: synced with it
	}
	s.mu.Lock()
	sg.size += int64(size)
	s.diskLen += int64(size)
	s.mu.Unlock()
	return sg, base, nil
}

// writeFailed cuts the segment back to its last good size and starts a new
// one, since after a failed fsync the kernel's view of the tail is unknown.
func (s *Spool) writeFailed(sg *segment, base int64, err error) error {
	sg.f.Truncate(base)
	if _, rerr := s.rotate(); rerr != nil {
		s.log.Error("spool: cannot start a new segment", "err", rerr)
	}
	return fmt.Errorf("spool: %w", err)
}

// rotate creates the next segment and makes its directory entry durable.
func (s *Spool) rotate() (*segment, error) {
	s.mu.Lock()
	seq := uint64(1)
	if n := len(s.segs); n > 0 {
		seq = s.segs[n-1].seq + 1
	}
	s.mu.Unlock()
	p := segPath(s.dir, seq)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return nil, err
	}
	sg := &segment{seq: seq, path: p, f: f}
	s.mu.Lock()
	s.segs = append(s.segs, sg)
	s.mu.Unlock()
	return sg, nil
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
