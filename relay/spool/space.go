package spool

import (
	"crypto/rand"
	"errors"
	"fmt"
	"github.com/mjrelay/mjrelay/relay/queue"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// keyFile holds the key that tags records (see record.go). It lives next
// to the segments, never inside them.
const keyFile = "KEY"

// loadKey reads the spool's record key, creating it on first use (created).
// If the key is lost while tagged records exist, a new one is made and the
// old records can still be read in sequence; only the scan after damage,
// which needs the old key, finds nothing, so damaged data is quarantined
// rather than guessed at (see replay).
func loadKey(dir string) (key []byte, created bool, err error) {
	p := filepath.Join(dir, keyFile)
	k, err := os.ReadFile(p)
	if err == nil && len(k) == 32 {
		return k, false, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("spool: reading %s: %w", p, err)
	}
	k = make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, false, err
	}
	if err := writeFileSync(p, k); err != nil {
		return nil, false, fmt.Errorf("spool: writing %s: %w", p, err)
	}
	return k, true, nil
}

// writeFileSync writes a small file atomically and durably.
func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

// Space for completions. Every completion ("done" record) is written to the
// active segment, and a full disk must never stop one: a completion that
// cannot be written leaves a delivered message in the queue, to be sent
// again after a restart. So before a batch of messages is written, the
// committer allocates (fallocate, keeping the file size) room in the active
// segment for the batch plus one completion for every message in the
// queue: intake can never take the bytes completions need, and completions,
// which never start a new segment, land in blocks that are already theirs.
// On a file system without fallocate this is best effort: a completion
// that cannot be written is kept in memory and written again until it is.
const (
	doneRecLen = headerLen + 24 // a completion: header and a queue id
	allocChunk = 1 << 20        // allocation grows by at least this much
	allocSlack = 64 << 10       // room kept beyond the computed need
)

// isNoSpace reports a full file system or an exhausted quota.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// reserve makes sure sg has allocated blocks up to end. It returns an error
// wrapping ErrFull when the file system has no room; a file system that
// cannot preallocate is noted and not asked again.
func (s *Spool) reserve(sg *segment, end int64) error {
	if s.noFallocate || end <= sg.allocEnd {
		return nil
	}
	end = max(end, sg.allocEnd+allocChunk)
	err := unix.Fallocate(int(sg.f.Fd()), unix.FALLOC_FL_KEEP_SIZE, sg.size, end-sg.size)
	switch {
	case err == nil:
		s.writtenSince.Add(end - max(sg.allocEnd, sg.size))
		sg.allocEnd = end
		return nil
	case isNoSpace(err):
		return fmt.Errorf("%w: %v", queue.ErrFull, err)
	case errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.ENOSYS), errors.Is(err, syscall.EINVAL):
		s.noFallocate = true
		s.log.Info("spool: the file system cannot preallocate; room for completions is not reserved", "err", err)
		return nil
	}
	return fmt.Errorf("spool: preallocating %s: %w", sg.path, err)
}

// releaseTail gives back the blocks allocated beyond a segment's data once
// it is no longer the one written to.
func (s *Spool) releaseTail(sg *segment) {
	if sg.allocEnd <= sg.size {
		return
	}
	s.writtenSince.Add(sg.size - sg.allocEnd)
	unix.Fallocate(int(sg.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, sg.size, sg.allocEnd-sg.size)
	sg.f.Truncate(sg.size) // ext4 frees blocks past the end on truncate
	sg.allocEnd = sg.size
}

// completionRoom is the room the active segment must keep for completions:
// one for every queued message (s.mu held).
func (s *Spool) completionRoom(extra int) int64 {
	return int64(len(s.index)+extra)*doneRecLen + allocSlack
}

// freeCacheFor is how long one statfs reading is used; the spool's own
// writes since then are subtracted, so only other writers' growth in that
// window goes unseen.
const freeCacheFor = 20 * time.Millisecond

// free returns the file system's free bytes.
func (s *Spool) free() int64 {
	s.freeMu.Lock()
	defer s.freeMu.Unlock()
	if time.Since(s.freeAt) > freeCacheFor {
		var st syscall.Statfs_t
		if err := syscall.Statfs(s.dir, &st); err == nil {
			s.freeBytes = int64(st.Bavail) * int64(st.Bsize)
		}
		s.freeAt = time.Now()
		s.writtenSince.Store(0)
	}
	return s.freeBytes - s.writtenSince.Load()
}
