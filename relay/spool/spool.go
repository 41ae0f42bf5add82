// Package spool is mjrelay's embedded durable message queue (a
// queue.Queue).
//
// Messages, retry states and completions are appended as checked and
// authenticated records (record.go) to segment files in one directory. A single committer goroutine writes the
// records of all waiting callers with one write and one fdatasync (group
// commit), so Put returns only once the message is on disk, and 32 sessions
// pay for one fsync instead of 32. Completions are written at once and
// synced with the next batch or within 100 ms (see Done). An in-memory
// index maps queue ids to body offsets. Segments are deleted oldest first
// once every message in them is done; a long-lived message in the oldest
// segment is copied forward so it does not pin the segments behind it.
// Corrupt data found on start-up is copied to quarantine/ and reported, and
// everything readable is kept; nothing inside a message body is ever taken
// for a record. Room for every queued message's completion is reserved
// before a message is written, and a completion the disk refuses anyway is
// kept and written again (space.go), so a full disk never makes delivered
// mail go out again.
package spool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/mjrelay/mjrelay/relay/queue"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrLocked is returned by Open when another process has the queue open.
var ErrLocked = errors.New("spool: another process holds the queue")

// Options configure a spool.
type Options struct {
	MaxBytes     int64 // bytes of queued messages; 0 = no limit
	MaxMessages  int   // 0 = no limit
	MinFreeBytes int64 // refuse when the file system would keep less free space
	SegmentSize  int64 // rotate after this many bytes (default 64 MiB)
	Logger       *slog.Logger
}

// Spool is an open queue directory. It is safe for concurrent use.
type Spool struct {
	dir  string
	opts Options
	log  *slog.Logger
	lock *os.File

	rec *sealer

	mu         sync.Mutex
	index      map[string]*entry
	completing int        // entries in index whose completion is not written yet
	liveBytes  int64      // bytes of the queued messages
	segs       []*segment // ascending; the last is active
	diskLen    int64      // bytes in all segments

	onCommit []func(queue.Item)

	admitMu      sync.Mutex   // makes a limit check and its reservation one step
	reserved     atomic.Int64 // bytes submitted but not yet committed
	reservedMsgs atomic.Int64 // messages submitted but not yet committed
	ops          chan *op
	quit         chan struct{}
	stopped      chan struct{} // closed when the committer has exited
	wg           sync.WaitGroup
	closed       atomic.Bool

	// Owned by the committer (and by Open before it starts).
	unsynced    *segment // holds lazy data not yet synced
	kept        []*op    // completions the disk refused, written again later
	noFallocate bool
	tagged      int // tagged records read at replay

	ids *queue.IDs

	freeMu       sync.Mutex
	freeBytes    int64
	freeAt       time.Time
	writtenSince atomic.Int64 // bytes the spool took from the disk since freeAt
}

type entry struct {
	env   queue.Envelope
	state queue.State
	seg   *segment
	off   int64 // body offset within seg
	n     int64 // body length
	// stateSeg holds the latest state record (nil if none).
	stateSeg *segment
	// completing: Done was called; the message is gone for everyone but
	// stays here (and keeps its segment) until the completion is written.
	completing bool
}

type segment struct {
	seq  uint64
	path string
	f    *os.File
	size int64
	// allocEnd is where the blocks allocated to the file end (>= size).
	allocEnd int64
	live     int   // messages whose body is here
	liveLen  int64 // their bytes
	readers  int
	// doneRefs are ids completed by records in this segment whose message
	// lives in an older segment (known after replay only; see evacuate).
	doneRefs []string
}

var _ queue.Queue = (*Spool)(nil)

// Open opens (creating if needed) the spool in dir, takes its lock and
// replays it. It fails with ErrLocked if another process has it open.
func Open(dir string, opts Options) (*Spool, error) {
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = 64 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	lock, err := LockDir(dir)
	if err != nil {
		return nil, err
	}
	key, newKey, err := loadKey(dir)
	if err != nil {
		lock.Close()
		return nil, err
	}
	s := &Spool{
		dir: dir, opts: opts, log: opts.Logger, lock: lock, rec: newSealer(key),
		index:   map[string]*entry{},
		ops:     make(chan *op, 1024),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	s.ids = queue.NewIDs(4)
	if err := s.replay(); err != nil {
		s.closeFiles()
		return nil, err
	}
	if newKey && s.tagged > 0 {
		s.log.Error("spool: the queue's record key (queue/KEY) was missing or damaged and has been replaced; the queue was read in full, but damage found in today's segments on a later start is quarantined whole instead of scanned past")
	}
	s.wg.Add(2)
	go s.committer()
	go s.maintain()
	return s, nil
}

// LockDir creates dir (0700) if needed and takes the lock file in it
// (dir/LOCK, an exclusive flock held until the file is closed), or returns
// ErrLocked when another process holds it. The feedback outbox, which
// lives beside the queue, locks its directory the same way.
func LockDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, err
	}
	return lock, nil
}

// Subscribe makes fn see every message: at once for those already queued,
// then each new one as soon as it is durable. fn runs outside the spool's
// locks and must not block for long.
func (s *Spool) Subscribe(fn func(queue.Item)) {
	s.mu.Lock()
	s.onCommit = append(s.onCommit, fn)
	s.mu.Unlock()
	for _, it := range s.List() {
		fn(it)
	}
}

// Close stops the committer after the queued operations and closes files.
func (s *Spool) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	close(s.quit)
	s.wg.Wait()
	s.closeFiles()
	return nil
}

func (s *Spool) closeFiles() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sg := range s.segs {
		sg.f.Close()
	}
	s.lock.Close()
}

// NewID returns a fresh queue id: 12 hex digits of Unix milliseconds, so ids
// sort by time, then 8 of a per-process random prefix and a counter.
func (s *Spool) NewID() string { return s.ids.New() }

// Put stores a message durably; the message is the concatenation of parts.
// When it returns nil the message and its envelope are fsynced and will
// survive a crash. env.ID must be set (NewID); Put sets env.Size.
func (s *Spool) Put(ctx context.Context, env *queue.Envelope, parts ...[]byte) error {
	if s.closed.Load() {
		return queue.ErrClosed
	}
	size := 0
	for _, p := range parts {
		size += len(p)
	}
	env.Size = int64(size)
	ej, err := json.Marshal(env)
	if err != nil {
		return err
	}
	bodyOff := int64(headerLen + 4 + len(ej))
	total := bodyOff + int64(size)
	if err := s.admit(int64(size), total); err != nil {
		return err
	}
	defer s.reserved.Add(-total)
	defer s.reservedMsgs.Add(-1)
	// The record is written from its parts: a large message is not copied.
	payload := messagePayload(ej, parts...)
	rec := append([][]byte{s.rec.header(recMessage, payload...)}, payload...)
	e := &entry{env: *env, state: queue.State{ID: env.ID}, n: int64(size)}
	err = s.submitOp(ctx, &op{parts: rec, msgs: 1, done: make(chan error, 1), apply: func(sg *segment, base int64) {
		e.seg, e.off = sg, base+bodyOff
		s.index[env.ID] = e
		s.addLive(sg, e.n)
	}})
	if err != nil {
		return err
	}
	s.mu.Lock()
	fns := s.onCommit
	s.mu.Unlock()
	for _, fn := range fns {
		fn(queue.Item{Envelope: e.env, State: e.state})
	}
	return nil
}

// Admit reports whether a message of size bytes would be accepted now
// (ErrFull if not). Put calls it; the SMTP session calls it early, at MAIL.
// The limits count the messages being written by other sessions too
// (reserved), and the free space is read afresh (see free), so concurrent
// sessions cannot together overrun min_free_bytes.
func (s *Spool) Admit(size int64) error { return s.admit(size, 0) }

// admit checks the limits for a message of size bytes and, if it fits and
// reserve > 0, counts reserve bytes as being written until the caller
// gives them back: check and reservation are one step, so sessions that
// check at the same moment cannot all take the same room.
func (s *Spool) admit(size, reserve int64) error {
	if reserve > 0 {
		s.admitMu.Lock()
		defer s.admitMu.Unlock()
	}
	s.mu.Lock()
	n, live := len(s.index)-s.completing, s.liveBytes
	// Room for completions, and the chunk an allocation may round up to.
	headroom := s.completionRoom(1) + allocChunk
	s.mu.Unlock()
	pending := s.reserved.Load()
	if s.opts.MaxMessages > 0 && n+int(s.reservedMsgs.Load()) >= s.opts.MaxMessages {
		return queue.ErrFull
	}
	if s.opts.MaxBytes > 0 && live+pending+size > s.opts.MaxBytes {
		return queue.ErrFull
	}
	if s.opts.MinFreeBytes > 0 && s.free()-pending < s.opts.MinFreeBytes+size+headroom {
		return queue.ErrFull
	}
	if reserve > 0 {
		s.reserved.Add(reserve)
		s.reservedMsgs.Add(1)
	}
	return nil
}

// SetState records a message's delivery progress durably.
func (s *Spool) SetState(ctx context.Context, st queue.State) error {
	if _, err := s.Get(st.ID); err != nil {
		return err
	}
	j, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return s.submit(ctx, s.rec.appendRecord(nil, recState, j), func(sg *segment, _ int64) {
		if e := s.index[st.ID]; e != nil && !e.completing {
			e.state, e.stateSeg = st, sg
		}
	})
}

// Done removes a message from the queue (delivered, failed or deleted).
// The completion is written at once but synced lazily: with the next
// message's group commit, or within lazySync. A machine crash in between
// can only deliver that message again (as Postfix can, which removes a
// delivered queue file without syncing its directory); it never loses one.
// This keeps delivery's fsyncs out of the way of the 250s.
//
// From the call on, the message is gone: Get, List and Body no longer see
// it. If the disk refuses the completion, the spool keeps it and writes it
// again until it is written (see space.go); Done still returns nil then.
func (s *Spool) Done(ctx context.Context, id string) error {
	s.mu.Lock()
	e, ok := s.index[id]
	if !ok || e.completing {
		s.mu.Unlock()
		return queue.ErrNotFound
	}
	e.completing = true
	s.completing++
	s.mu.Unlock()
	return s.submitOp(ctx, &op{parts: [][]byte{s.rec.appendRecord(nil, recDone, []byte(id))}, lazy: true, keep: true,
		done: make(chan error, 1), apply: func(*segment, int64) {
			if e := s.index[id]; e != nil {
				s.addLive(e.seg, -e.n)
				delete(s.index, id)
				s.completing--
			}
		}})
}

// addLive counts a message (n > 0: its body length) in or out of sg
// (s.mu held).
func (s *Spool) addLive(sg *segment, n int64) {
	if n >= 0 {
		sg.live++
	} else {
		sg.live--
	}
	sg.liveLen += n
	s.liveBytes += n
}

// Get returns one queued message's envelope and state.
func (s *Spool) Get(id string) (queue.Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.index[id]
	if !ok || e.completing {
		return queue.Item{}, queue.ErrNotFound
	}
	return queue.Item{Envelope: e.env, State: e.state}, nil
}

// Body returns a queued message's bytes.
func (s *Spool) Body(id string) ([]byte, error) {
	s.mu.Lock()
	e, ok := s.index[id]
	if !ok || e.completing {
		s.mu.Unlock()
		return nil, queue.ErrNotFound
	}
	sg, off, n := e.seg, e.off, e.n
	sg.readers++
	s.mu.Unlock()
	defer func() { s.mu.Lock(); sg.readers--; s.mu.Unlock() }()
	b := make([]byte, n)
	if _, err := sg.f.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("spool: reading %s: %w", id, err)
	}
	return b, nil
}

// List returns every queued message, oldest first.
func (s *Spool) List() []queue.Item {
	s.mu.Lock()
	out := make([]queue.Item, 0, len(s.index))
	for _, e := range s.index {
		if !e.completing {
			out = append(out, queue.Item{Envelope: e.env, State: e.state})
		}
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Envelope.ID < out[j].Envelope.ID })
	return out
}

// Stats returns the current totals.
func (s *Spool) Stats() queue.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return queue.Stats{Messages: len(s.index) - s.completing, DiskBytes: s.diskLen, Segments: len(s.segs)}
}

func segPath(dir string, seq uint64) string {
	return filepath.Join(dir, fmt.Sprintf("seg-%012d.log", seq))
}

// SyncDir fsyncs a directory so that a file created or renamed in it is
// durable (the feedback outbox beside the queue needs it too).
func SyncDir(dir string) error { return syncDir(dir) }

// syncDir fsyncs a directory so that creations, renames and removals in it
// are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
