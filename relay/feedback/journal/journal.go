// Package journal is the embedded feedback.Outbox: an append-only journal
// in one directory (data_dir/outbox), beside the queue on the same disk.
//
// Each record is one line: the CRC-32C of the JSON in 8 hex digits, a
// space, the JSON, a newline: an item added (with its state), a retry
// state, a finish. JSON escapes every control character, so a newline is
// always a record's end and nothing inside a record (a remote server's
// text, a subject) can pass for a record. Add, Retry and Finish write and
// fdatasync before they return. At Open the journal is replayed: a torn
// last line (a crash during a write) is cut off; a damaged line elsewhere
// is skipped and reported, the file copied to quarantine/ first. The
// journal is rewritten with only what is live (pending items, remembered
// keys) when it has grown to several times that, and at Open. A lock file
// keeps a second process out.
package journal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/mjrelay/mjrelay/relay/feedback"
	"github.com/mjrelay/mjrelay/relay/spool"
)

// ErrLocked is returned by Open when another process has the journal open.
var ErrLocked = errors.New("journal: another process holds the feedback outbox")

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Journal is an open outbox directory. It is safe for concurrent use.
type Journal struct {
	dir  string
	log  *slog.Logger
	lock *os.File

	mu      sync.Mutex
	f       *os.File
	size    int64
	records int // lines in the file
	pending map[string]*slot
	done    map[string]feedback.Result
	closed  bool
}

type slot struct {
	e     feedback.Entry
	lease time.Time
}

// record is one journal line.
type record struct {
	Op     string           `json:"op"` // a: add, r: retry, f: finish
	Key    string           `json:"key,omitempty"`
	Item   *feedback.Item   `json:"item,omitempty"`
	State  *feedback.State  `json:"state,omitempty"`
	Result *feedback.Result `json:"result,omitempty"`
}

var _ feedback.Outbox = (*Journal)(nil)

// Open opens (creating if needed) the journal in dir.
func Open(dir string, log *slog.Logger) (*Journal, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lock, err := spool.LockDir(dir)
	if errors.Is(err, spool.ErrLocked) {
		return nil, ErrLocked
	}
	if err != nil {
		return nil, err
	}
	j := &Journal{dir: dir, log: log, lock: lock, pending: map[string]*slot{}, done: map[string]feedback.Result{}}
	if err := j.replay(); err != nil {
		lock.Close()
		return nil, err
	}
	if err := j.compact(); err != nil {
		lock.Close()
		return nil, err
	}
	return j, nil
}

func (j *Journal) path() string { return filepath.Join(j.dir, "journal") }

// replay reads the journal into memory.
func (j *Journal) replay() error {
	data, err := os.ReadFile(j.path())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	bad, quarantined := 0, false
	for off := 0; off < len(data); {
		end := bytes.IndexByte(data[off:], '\n')
		if end < 0 {
			// A torn last line: never acknowledged; the compaction drops it.
			j.log.Warn("feedback outbox: an unfinished last record was dropped (a crash during a write)", "bytes", len(data)-off)
			break
		}
		line := data[off : off+end]
		off += end + 1
		var r record
		if err := decodeLine(line, &r); err != nil {
			if !quarantined {
				quarantined = true
				j.quarantine(data)
			}
			bad++
			continue
		}
		j.apply(r)
	}
	if bad > 0 {
		j.log.Error("feedback outbox: damaged records skipped; the rest is kept (a copy is in quarantine/)", "records", bad, "dir", j.dir)
	}
	return nil
}

func decodeLine(line []byte, r *record) error {
	if len(line) < 10 || line[8] != ' ' {
		return errors.New("short")
	}
	want, err := strconv.ParseUint(string(line[:8]), 16, 32)
	if err != nil || uint32(want) != crc32.Checksum(line[9:], crcTable) {
		return errors.New("checksum")
	}
	return json.Unmarshal(line[9:], r)
}

func (j *Journal) quarantine(data []byte) {
	q := filepath.Join(j.dir, "quarantine")
	dst := filepath.Join(q, "journal."+time.Now().UTC().Format("20060102T150405.000000000"))
	err := os.MkdirAll(q, 0o700)
	if err == nil {
		err = os.WriteFile(dst, data, 0o600)
	}
	if err != nil {
		j.log.Error("feedback outbox: cannot copy the damaged journal to quarantine/", "err", err)
	}
}

// apply applies one record to memory (j.mu held, or during Open).
func (j *Journal) apply(r record) {
	switch r.Op {
	case "a":
		if r.Item == nil || r.Item.Key == "" {
			return
		}
		e := feedback.Entry{Item: *r.Item}
		if r.State != nil {
			e.State = *r.State
		}
		if _, finished := j.done[e.Key]; !finished {
			j.pending[e.Key] = &slot{e: e}
		}
	case "r":
		if s := j.pending[r.Key]; s != nil && r.State != nil {
			s.e.State, s.lease = *r.State, time.Time{}
		}
	case "f":
		if r.Result != nil {
			delete(j.pending, r.Key)
			j.done[r.Key] = *r.Result
		}
	}
}

// encode frames records as journal lines.
func encode(rs ...record) ([]byte, error) {
	var b bytes.Buffer
	for _, r := range rs {
		js, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "%08x ", crc32.Checksum(js, crcTable))
		b.Write(js)
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

// write appends records and fdatasyncs (j.mu held); on failure the file is
// cut back to where it was, so no partial record stays in the middle.
func (j *Journal) write(rs ...record) error {
	if j.closed {
		return errors.New("journal: closed")
	}
	b, err := encode(rs...)
	if err != nil {
		return err
	}
	if _, err := j.f.Write(b); err != nil {
		j.f.Truncate(j.size)
		j.f.Seek(j.size, io.SeekStart)
		return fmt.Errorf("feedback outbox: %w", err)
	}
	if err := syscall.Fdatasync(int(j.f.Fd())); err != nil {
		return fmt.Errorf("feedback outbox: %w", err)
	}
	j.size += int64(len(b))
	j.records += len(rs)
	return nil
}

// compact rewrites the journal with what is live (j.mu held, or at Open).
func (j *Journal) compact() error {
	var rs []record
	for _, s := range j.sorted() {
		it, st := s.e.Item, s.e.State
		rs = append(rs, record{Op: "a", Item: &it, State: &st})
	}
	keys := make([]string, 0, len(j.done))
	for k := range j.done {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		res := j.done[k]
		rs = append(rs, record{Op: "f", Key: k, Result: &res})
	}
	b, err := encode(rs...)
	if err != nil {
		return err
	}
	tmp := j.path() + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err = f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, j.path())
	}
	if err == nil {
		err = spool.SyncDir(j.dir)
	}
	if err != nil {
		os.Remove(tmp)
		if j.f != nil {
			return nil // keep appending to the old journal
		}
		return fmt.Errorf("feedback outbox: %w", err)
	}
	nf, err := os.OpenFile(j.path(), os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f, j.size, j.records = nf, int64(len(b)), len(rs)
	return nil
}

// maybeCompact compacts when dead records outnumber live ones (j.mu held).
func (j *Journal) maybeCompact() {
	live := len(j.pending) + len(j.done)
	if j.records > 1000 && j.records > 4*live {
		if err := j.compact(); err != nil {
			j.log.Warn("feedback outbox: compaction failed; the journal keeps growing", "err", err)
		}
	}
}

// sorted returns the pending slots, oldest first (j.mu held).
func (j *Journal) sorted() []*slot {
	out := make([]*slot, 0, len(j.pending))
	for _, s := range j.pending {
		out = append(out, s)
	}
	sort.Slice(out, func(a, b int) bool {
		if !out[a].e.State.Added.Equal(out[b].e.State.Added) {
			return out[a].e.State.Added.Before(out[b].e.State.Added)
		}
		return out[a].e.Key < out[b].e.Key
	})
	return out
}

// Add stores the items whose keys are new and returns them.
func (j *Journal) Add(ctx context.Context, items []feedback.Item) ([]feedback.Item, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	seen := map[string]bool{}
	var added []feedback.Item
	var rs []record
	now := time.Now()
	for _, it := range items {
		if it.Key == "" {
			return nil, errors.New("journal: an item without a key")
		}
		_, finished := j.done[it.Key]
		if finished || j.pending[it.Key] != nil || seen[it.Key] {
			continue
		}
		seen[it.Key] = true
		it := it
		st := feedback.State{Added: now}
		rs = append(rs, record{Op: "a", Item: &it, State: &st})
		added = append(added, it)
	}
	if len(rs) == 0 {
		return nil, nil
	}
	if err := j.write(rs...); err != nil {
		return nil, err
	}
	for _, r := range rs {
		j.pending[r.Item.Key] = &slot{e: feedback.Entry{Item: *r.Item, State: *r.State}}
	}
	return added, nil
}

// Claim leases up to max due items.
func (j *Journal) Claim(ctx context.Context, now time.Time, max int, lease time.Duration) ([]feedback.Entry, error) {
	return j.take(max, func(s *slot) bool {
		if s.e.State.Next.After(now) || s.lease.After(now) {
			return false
		}
		s.lease = now.Add(lease)
		return true
	}), nil
}

// take returns up to max pending items that keep accepts, oldest first.
func (j *Journal) take(max int, keep func(*slot) bool) []feedback.Entry {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []feedback.Entry
	for _, s := range j.sorted() {
		if len(out) >= max {
			break
		}
		if keep(s) {
			out = append(out, s.e)
		}
	}
	return out
}

// Retry records a failed attempt.
func (j *Journal) Retry(ctx context.Context, key string, st feedback.State) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := j.pending[key]
	if s == nil {
		return feedback.ErrNotFound
	}
	st.Added = s.e.State.Added
	if err := j.write(record{Op: "r", Key: key, State: &st}); err != nil {
		s.lease = time.Time{}
		return err
	}
	s.e.State, s.lease = st, time.Time{}
	j.maybeCompact()
	return nil
}

// Finish records an item's end.
func (j *Journal) Finish(ctx context.Context, key string, r feedback.Result) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.pending[key] == nil {
		return feedback.ErrNotFound
	}
	err := j.write(record{Op: "f", Key: key, Result: &r})
	// Even unwritten, the end is kept in memory: this process does not
	// send the item again (after a restart it would be, once).
	delete(j.pending, key)
	j.done[key] = r
	j.maybeCompact()
	return err
}

// Forget drops the keys finished before t.
func (j *Journal) Forget(ctx context.Context, before time.Time) (int, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	n := 0
	for k, r := range j.done {
		if r.At.Before(before) {
			delete(j.done, k)
			n++
		}
	}
	if n > 0 {
		j.maybeCompact()
	}
	return n, nil
}

// List returns up to max pending items, oldest first.
func (j *Journal) List(ctx context.Context, max int) ([]feedback.Entry, error) {
	return j.take(max, func(*slot) bool { return true }), nil
}

// Stats returns the totals.
func (j *Journal) Stats(ctx context.Context) (feedback.Stats, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	st := feedback.Stats{Pending: len(j.pending), Remembered: len(j.done)}
	for _, s := range j.pending {
		if st.Oldest.IsZero() || s.e.State.Added.Before(st.Oldest) {
			st.Oldest = s.e.State.Added
		}
	}
	return st, nil
}

// Close closes the journal; everything written stays for the next Open.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	j.closed = true
	err := j.f.Close()
	j.lock.Close()
	return err
}
