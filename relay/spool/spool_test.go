package spool_test

import (
	"bytes"
	"context"
	"fmt"
	"github.com/mjrelay/mjrelay/relay/queue"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/spool"
)

func open(t *testing.T, dir string, opts spool.Options) *spool.Spool {
	t.Helper()
	s, err := spool.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func put(t *testing.T, s *spool.Spool, body string) string {
	t.Helper()
	env := &queue.Envelope{ID: s.NewID(), Received: time.Now(), From: "a@example.com", To: []string{"b@example.org"}}
	if err := s.Put(context.Background(), env, []byte(body)); err != nil {
		t.Fatal(err)
	}
	return env.ID
}

func TestSecondOpenIsLocked(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, spool.Options{})
	defer s.Close()
	if _, err := spool.Open(dir, spool.Options{}); err != spool.ErrLocked {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
}

func segments(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestTornTailIsTruncated(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, spool.Options{})
	a := put(t, s, "kept\r\n")
	s.Close()
	seg := segments(t, dir)[0]
	f, _ := os.OpenFile(seg, os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte("MJR1M\x00\x00\x10\x00partial"))
	f.Close()

	s = open(t, dir, spool.Options{})
	defer s.Close()
	if items := s.List(); len(items) != 1 || items[0].Envelope.ID != a {
		t.Fatalf("List = %+v", items)
	}
	q, _ := filepath.Glob(filepath.Join(dir, "quarantine", "*"))
	if len(q) != 1 {
		t.Fatalf("quarantine holds %v, want one copy", q)
	}
	// The torn bytes are gone, so new writes land after the good data.
	b := put(t, s, "after\r\n")
	s.Close()
	s = open(t, dir, spool.Options{})
	if len(s.List()) != 2 {
		t.Fatalf("after a new write: %d items, want 2 (%s, %s)", len(s.List()), a, b)
	}
	s.Close()
}

func TestCorruptMiddleQuarantinedRestKept(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, spool.Options{})
	var ids []string
	for i := 0; i < 5; i++ {
		ids = append(ids, put(t, s, fmt.Sprintf("message %d %s\r\n", i, bytes.Repeat([]byte("x"), 100))))
	}
	s.Close()
	seg := segments(t, dir)[0]
	data, _ := os.ReadFile(seg)
	// Flip a byte inside the third message's body.
	i := bytes.Index(data, []byte("message 2"))
	data[i+3] ^= 0xff
	os.WriteFile(seg, data, 0o600)

	s = open(t, dir, spool.Options{})
	got := map[string]bool{}
	for _, it := range s.List() {
		got[it.Envelope.ID] = true
	}
	for k, id := range ids {
		if got[id] != (k != 2) {
			t.Errorf("message %d present=%v", k, got[id])
		}
	}
	if q, _ := filepath.Glob(filepath.Join(dir, "quarantine", "*")); len(q) != 1 {
		t.Errorf("quarantine = %v", q)
	}
	if _, err := os.Stat(seg); !os.IsNotExist(err) {
		t.Errorf("damaged segment still in place (err=%v)", err)
	}
	s.Close()
	// A second start finds nothing wrong and the same messages.
	s = open(t, dir, spool.Options{})
	defer s.Close()
	if n := len(s.List()); n != 4 {
		t.Fatalf("after second reopen: %d messages, want 4", n)
	}
	if q, _ := filepath.Glob(filepath.Join(dir, "quarantine", "*")); len(q) != 1 {
		t.Errorf("second start quarantined again: %v", q)
	}
	for _, id := range []string{ids[0], ids[4]} {
		if b, err := s.Body(id); err != nil || !bytes.HasPrefix(b, []byte("message ")) {
			t.Errorf("Body(%s) = %q, %v", id, b, err)
		}
	}
}

func TestPinnedSegmentIsCopiedForward(t *testing.T) {
	dir := t.TempDir()
	opts := spool.Options{SegmentSize: 4096}
	s := open(t, dir, opts)
	ctx := context.Background()
	long := put(t, s, "long-lived\r\n")
	s.SetState(ctx, queue.State{ID: long, Attempts: 7})
	payload := string(bytes.Repeat([]byte("y"), 1000))
	for i := 0; i < 60; i++ {
		id := put(t, s, payload)
		if err := s.Done(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(segments(t, dir)) > 5 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := len(segments(t, dir)); n > 5 {
		t.Fatalf("%d segments still on disk; the long-lived message pins them", n)
	}
	s.Close()
	s = open(t, dir, opts)
	defer s.Close()
	items := s.List()
	if len(items) != 1 || items[0].Envelope.ID != long || items[0].State.Attempts != 7 {
		t.Fatalf("after reclaim and reopen: %+v", items)
	}
	if b, _ := s.Body(long); string(b) != "long-lived\r\n" {
		t.Fatalf("body = %q", b)
	}
}

// TestMinFreeBytes: a message that would leave the file system less than
// min_free_bytes is refused (the other limits are in the conformance
// suite).
func TestMinFreeBytes(t *testing.T) {
	s := open(t, t.TempDir(), spool.Options{MinFreeBytes: 1 << 62})
	defer s.Close()
	if err := s.Admit(10); err != queue.ErrFull {
		t.Fatalf("Admit: %v, want ErrFull", err)
	}
	env := &queue.Envelope{ID: s.NewID(), To: []string{"x@y"}}
	if err := s.Put(context.Background(), env, bytes.Repeat([]byte("z"), 10)); err != queue.ErrFull {
		t.Fatalf("Put: %v, want ErrFull", err)
	}
	if got := len(s.List()); got != 0 {
		t.Fatalf("%d stored, want 0", got)
	}
}

func BenchmarkPut10KB32(b *testing.B) {
	s, err := spool.Open(b.TempDir(), spool.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	body := bytes.Repeat([]byte("m"), 10240)
	b.SetParallelism(16) // 32 goroutines on 2 cores
	b.SetBytes(int64(len(body)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			env := &queue.Envelope{ID: s.NewID(), To: []string{"b@example.org"}}
			if err := s.Put(context.Background(), env, body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestLargeMessageWrittenInParts: a batch over the copy limit is written
// part by part; a large message among small ones comes back byte for byte.
func TestLargeMessageWrittenInParts(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, spool.Options{})
	big := bytes.Repeat([]byte("0123456789abcdef"), 3<<20/16)
	var wg sync.WaitGroup
	ids := make(chan string, 9)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); ids <- put(t, s, fmt.Sprintf("small %d\r\n", i)) }()
	}
	env := &queue.Envelope{ID: s.NewID(), To: []string{"b@example.org"}}
	if err := s.Put(context.Background(), env, []byte("Received: x\r\n"), big); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(ids)
	s.Close()
	s = open(t, dir, spool.Options{})
	defer s.Close()
	got, err := s.Body(env.ID)
	if err != nil || !bytes.Equal(got, append([]byte("Received: x\r\n"), big...)) {
		t.Fatalf("large body: %d bytes, %v", len(got), err)
	}
	for id := range ids {
		if b, err := s.Body(id); err != nil || !bytes.HasPrefix(b, []byte("small ")) {
			t.Fatalf("small %s: %q %v", id, b, err)
		}
	}
}
