package spool

import (
	"context"
	"fmt"
	"os"
	"syscall"
)

// op is one caller's records waiting for the committer.
type op struct {
	data []byte
	// apply runs under s.mu once the data is durable; base is where the
	// data starts in sg.
	apply func(sg *segment, base int64)
	done  chan error
}

const maxBatchBytes = 16 << 20

// submit hands data to the committer and waits until it is durable (or the
// context ends; the write then still happens, the caller just stops waiting).
func (s *Spool) submit(ctx context.Context, data []byte, apply func(*segment, int64)) error {
	o := &op{data: data, apply: apply, done: make(chan error, 1)}
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
	for {
		var first *op
		select {
		case first = <-s.ops:
		case <-s.quit:
			// Drain what was submitted before Close.
			select {
			case first = <-s.ops:
			default:
				return
			}
		}
		batch = append(batch[:0], first)
		size := len(first.data)
	fill:
		for size < maxBatchBytes {
			select {
			case o := <-s.ops:
				batch = append(batch, o)
				size += len(o.data)
			default:
				break fill
			}
		}
		buf = buf[:0]
		for _, o := range batch {
			buf = append(buf, o.data...)
		}
		sg, base, err := s.write(buf)
		if err != nil {
			s.log.Error("spool write failed", "err", err)
		} else {
			s.mu.Lock()
			off := base
			for _, o := range batch {
				o.apply(sg, off)
				off += int64(len(o.data))
			}
			s.mu.Unlock()
		}
		for _, o := range batch {
			o.done <- err
		}
		if cap(buf) > 4*maxBatchBytes {
			buf = nil
		}
	}
}

// write appends buf to the active segment (rotating first if it is full)
// and makes it durable. Only the committer calls it.
func (s *Spool) write(buf []byte) (*segment, int64, error) {
	s.mu.Lock()
	var sg *segment
	if n := len(s.segs); n > 0 {
		sg = s.segs[n-1]
	}
	s.mu.Unlock()
	if sg == nil || (sg.size > 0 && sg.size+int64(len(buf)) > s.opts.SegmentSize) {
		var err error
		if sg, err = s.rotate(); err != nil {
			return nil, 0, err
		}
	}
	base := sg.size
	if _, err := sg.f.WriteAt(buf, base); err != nil {
		return nil, 0, s.writeFailed(sg, base, err)
	}
	if err := syscall.Fdatasync(int(sg.f.Fd())); err != nil {
		return nil, 0, s.writeFailed(sg, base, err)
	}
	s.mu.Lock()
	sg.size += int64(len(buf))
	s.diskLen += int64(len(buf))
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
