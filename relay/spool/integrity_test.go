package spool_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/mjrelay/mjrelay/relay/queue"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mjrelay/mjrelay/relay/spool"
	"github.com/mjrelay/mjrelay/relay/spool/spooltest"
)

// forged builds what a client could place in a message body to look like
// queue records: a message for an envelope of its choosing and a
// completion of someone else's message, framed as the old CRC-only records
// (which a client can compute) and as current ones with a guessed tag.
func forged(victim string) []byte {
	crc := crc32.MakeTable(crc32.Castagnoli)
	v1 := func(typ byte, payload []byte) []byte {
		h := make([]byte, 13)
		copy(h, "MJR1")
		h[4] = typ
		binary.BigEndian.PutUint32(h[5:9], uint32(len(payload)))
		binary.BigEndian.PutUint32(h[9:13], crc32.Update(crc32.Update(0, crc, h[4:5]), crc, payload))
		return append(h, payload...)
	}
	v2 := func(typ byte, payload []byte) []byte {
		h := make([]byte, 29)
		copy(h, "MJR2")
		h[4] = typ
		binary.BigEndian.PutUint32(h[5:9], uint32(len(payload)))
		binary.BigEndian.PutUint32(h[9:13], crc32.Update(crc32.Update(0, crc, h[4:9]), crc, payload))
		copy(h[13:], "guessed tag 0123")
		return append(h, payload...)
	}
	env, _ := json.Marshal(queue.Envelope{ID: "0000000000000000phantom1", From: "evil@example.com", To: []string{"target@example.org"}})
	msg := binary.BigEndian.AppendUint32(nil, uint32(len(env)))
	msg = append(append(msg, env...), "Subject: nobody submitted this\r\n\r\nphantom\r\n"...)
	var out []byte
	for _, frame := range []func(byte, []byte) []byte{v1, v2} {
		out = append(out, frame('M', msg)...)
		out = append(out, frame('D', []byte(victim))...)
	}
	return out
}

// TestRecordInsideBodyIsNeverReplayed: after damage, replay looks for the
// next record; it must never take one from inside a message body, whatever
// the body holds, so a crash while a hostile message is written cannot
// queue mail nobody submitted or complete someone else's.
func TestRecordInsideBodyIsNeverReplayed(t *testing.T) {
	tests := []struct {
		name string
		// damage breaks the hostile record (at off, n bytes long) in seg.
		damage func(t *testing.T, seg string, off, n int)
		after  bool // a good message follows the hostile one
	}{
		{"torn write of the last record", func(t *testing.T, seg string, off, n int) {
			if err := os.Truncate(seg, int64(off+n-10)); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"damaged header in the middle", func(t *testing.T, seg string, off, n int) {
			data, _ := os.ReadFile(seg)
			data[off+6] ^= 0x40 // the length field
			os.WriteFile(seg, data, 0o600)
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, spool.Options{})
			victim := put(t, s, "the victim's message\r\n")
			before, _ := os.ReadFile(segments(t, dir)[0])
			put(t, s, "Subject: hostile\r\n\r\n"+string(forged(victim))+strings.Repeat("padding\r\n", 20))
			var good string
			if tc.after {
				good = put(t, s, "a later message\r\n")
			}
			s.Close()
			seg := segments(t, dir)[0]
			after, _ := os.ReadFile(seg)
			hostile := len(before)
			n := bytes.Index(after[hostile:], []byte("padding")) + 9*20
			if tc.after {
				n = bytes.Index(after[hostile+1:], []byte("MJR2")) + 1
			}
			tc.damage(t, seg, hostile, n)

			s = open(t, dir, spool.Options{})
			defer s.Close()
			var ids []string
			for _, it := range s.List() {
				ids = append(ids, it.Envelope.ID)
				if it.Envelope.From == "evil@example.com" {
					t.Errorf("replay queued a message from inside a body: %+v", it.Envelope)
				}
			}
			want := []string{victim}
			if good != "" {
				want = append(want, good)
			}
			if fmt.Sprint(ids) != fmt.Sprint(want) {
				t.Fatalf("after replay the queue holds %v, want %v", ids, want)
			}
		})
	}
}

// TestFullDiskCompletionsAreWritten: with the disk full, completions still
// go to disk (their room was reserved with the messages), so delivered
// mail is not in the queue after a restart; a message is refused with
// ErrFull; and refused writes leave no segment files behind.
func TestFullDiskCompletionsAreWritten(t *testing.T) {
	dir := spooltest.SmallDisk(t, 8<<20)
	qdir := filepath.Join(dir, "queue")
	s := open(t, qdir, spool.Options{})
	var ids []string
	for i := 0; i < 40; i++ {
		ids = append(ids, put(t, s, fmt.Sprintf("message %d\r\n%s", i, strings.Repeat("x", 20<<10))))
	}
	spooltest.Fill(t, dir)
	// What was allocated to the queue before the disk filled is still its
	// own: messages go on until it is used up, then they are refused.
	refused, segs := 0, 0
	for i := 0; i < 100 && refused < 20; i++ {
		env := &queue.Envelope{ID: s.NewID(), To: []string{"b@example.org"}}
		err := s.Put(context.Background(), env, bytes.Repeat([]byte("y"), 64<<10))
		switch {
		case err == nil && refused > 0:
			t.Fatal("a message was taken after one was refused for space")
		case err == nil:
			ids = append(ids, env.ID)
		case !errors.Is(err, queue.ErrFull):
			t.Fatalf("Put on a full disk: %v, want ErrFull", err)
		case refused == 0:
			segs = len(segments(t, qdir))
			fallthrough
		default:
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("no message was refused on a full disk")
	}
	if n := len(segments(t, qdir)); n != segs {
		t.Errorf("%d segment files after refused writes, want %d", n, segs)
	}
	for _, id := range ids {
		if err := s.Done(context.Background(), id); err != nil {
			t.Fatalf("Done on a full disk: %v", err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, qdir, spool.Options{})
	defer s.Close()
	if n := len(s.List()); n != 0 {
		t.Fatalf("%d delivered messages back in the queue after a restart", n)
	}
}

// TestRefusedCompletionIsWrittenLater: a completion the disk refuses (here
// the reserved room was taken away behind the spool's back) is kept, the
// message is gone at once, and the completion is written once there is
// space, without a restart.
func TestRefusedCompletionIsWrittenLater(t *testing.T) {
	dir := spooltest.SmallDisk(t, 8<<20)
	qdir := filepath.Join(dir, "queue")
	var log syncBuffer
	s := open(t, qdir, spool.Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	var ids []string
	for i := 0; i < 200; i++ {
		ids = append(ids, put(t, s, "to be delivered\r\n"))
	}
	seg := segments(t, qdir)[0]
	fi, _ := os.Stat(seg)
	f, err := os.OpenFile(seg, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, fi.Size(), 64<<20)
	f.Close()
	filler := spooltest.Fill(t, dir)

	// 200 completions take more than the partly written last page: some
	// need a new block, and the disk has none.
	for _, id := range ids {
		if err := s.Done(context.Background(), id); err != nil {
			t.Fatalf("Done: %v", err)
		}
		if _, err := s.Get(id); !errors.Is(err, queue.ErrNotFound) {
			t.Fatalf("Get after Done: %v, want ErrNotFound", err)
		}
	}
	if n := len(s.List()); n != 0 {
		t.Fatalf("List after Done shows %d messages", n)
	}
	if !strings.Contains(log.String(), "spool write failed") {
		t.Fatalf("the completion was written although the disk is full; the test did not test anything:\n%s", log.String())
	}
	os.Remove(filler)
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(log.String(), "completions the disk refused are written now") {
		if time.Now().After(deadline) {
			t.Fatalf("the kept completion was not written once there was space:\n%s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Close()
	s = open(t, qdir, spool.Options{})
	defer s.Close()
	if n := len(s.List()); n != 0 {
		t.Fatalf("%d messages after a restart, want 0", n)
	}
}

// TestDrainedQueueAcceptsAgain: limits count queued messages, not dead
// bytes, so a queue that filled max_bytes in one segment takes mail again
// once it drains; and that segment is emptied in place, before and after
// a restart.
func TestDrainedQueueAcceptsAgain(t *testing.T) {
	dir := t.TempDir()
	const size = 40 << 10
	opts := spool.Options{MaxBytes: 10 * size}
	s := open(t, dir, opts)
	var ids []string
	for i := 0; i < 10; i++ {
		ids = append(ids, put(t, s, strings.Repeat("q", size)))
	}
	if err := s.Admit(size); !errors.Is(err, queue.ErrFull) {
		t.Fatalf("Admit over max_bytes: %v, want ErrFull", err)
	}
	for _, id := range ids[:9] {
		s.Done(context.Background(), id)
	}
	s.Close()
	s = open(t, dir, opts)
	defer s.Close()
	if err := s.Admit(size); err != nil {
		t.Fatalf("Admit after the queue drained: %v", err)
	}
	s.Done(context.Background(), ids[9])
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().DiskBytes != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the delivered segment still takes %d bytes", s.Stats().DiskBytes)
		}
		time.Sleep(50 * time.Millisecond)
	}
	id := put(t, s, "after the recycle\r\n")
	s.Close()
	s = open(t, dir, opts)
	defer s.Close()
	if items := s.List(); len(items) != 1 || items[0].Envelope.ID != id {
		t.Fatalf("after recycle and restart: %+v", items)
	}
}

// TestMinFreeBytesHoldsUnderConcurrency: many sessions writing at once
// cannot together take the disk below min_free_bytes.
func TestMinFreeBytesHoldsUnderConcurrency(t *testing.T) {
	dir := spooltest.SmallDisk(t, 64<<20)
	const minFree = 24 << 20
	s := open(t, filepath.Join(dir, "queue"), spool.Options{MinFreeBytes: minFree})
	defer s.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	refused := 0
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				env := &queue.Envelope{ID: s.NewID(), To: []string{"b@example.org"}}
				err := s.Put(context.Background(), env, bytes.Repeat([]byte("f"), 1<<20))
				if errors.Is(err, queue.ErrFull) {
					mu.Lock()
					refused++
					mu.Unlock()
				} else if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if refused == 0 {
		t.Fatal("nothing was refused: the test wrote too little to test the limit")
	}
	if free := spooltest.Free(t, dir); free < minFree {
		t.Fatalf("%d bytes free after concurrent writes, below min_free_bytes %d", free, minFree)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}
func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

// TestSegmentsOfEarlierVersionsAreRead: a queue written before records
// were tagged (and before queue/KEY existed) is read in full after an
// upgrade, and new mail is added to it.
func TestSegmentsOfEarlierVersionsAreRead(t *testing.T) {
	dir := t.TempDir()
	// forged() frames its first records as the earlier version did.
	old := forged("0000000000000000000victim")
	old = old[:bytes.Index(old[1:], []byte("MJR2"))+1]
	os.WriteFile(filepath.Join(dir, "seg-000000000001.log"), old, 0o600)
	s := open(t, dir, spool.Options{})
	items := s.List()
	if len(items) != 1 || items[0].Envelope.From != "evil@example.com" {
		t.Fatalf("earlier version's queue read as %+v", items)
	}
	if b, err := s.Body(items[0].Envelope.ID); err != nil || string(b) != "Subject: nobody submitted this\r\n\r\nphantom\r\n" {
		t.Fatalf("Body = %q, %v", b, err)
	}
	id := put(t, s, "new\r\n")
	s.Close()
	s = open(t, dir, spool.Options{})
	defer s.Close()
	if n := len(s.List()); n != 2 {
		t.Fatalf("after a new message and a restart: %d messages, want 2 (%s)", n, id)
	}
}
