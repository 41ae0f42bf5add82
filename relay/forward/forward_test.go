package forward_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/control"
	"github.com/mjrelay/mjrelay/relay/forward"
	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/spool"
	"github.com/mjrelay/mjrelay/relay/spool/spooltest"
)

// serve answers on a new unix socket from q and returns its path and the
// server.
func serve(t *testing.T, q queue.Queue) (string, *forward.Server) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "handover.sock")
	l, err := control.ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := forward.NewServer(q)
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return path, srv
}

func envelope(id string) *queue.Envelope {
	return &queue.Envelope{ID: id, Received: time.Now().UTC().Truncate(time.Millisecond), From: "bounce@acme.example",
		To: []string{"a@client.example", "b@client.example"}, User: "odoo", Class: "bulk", Campaign: "c1", Subject: "Invoice"}
}

// TestForwardedPut: a forwarded message is in the other process's queue,
// envelope and bytes as given, durable when Put returns.
func TestForwardedPut(t *testing.T) {
	sp := spooltest.Open(t, "", spool.Options{})
	path, _ := serve(t, sp)
	c := forward.NewClient(path, sp.NewID)
	defer c.Close()
	env := envelope(c.NewID())
	parts := [][]byte{[]byte("Received: by relay\r\n"), []byte("Subject: Invoice\r\n\r\nbody\r\n")}
	if err := c.Put(context.Background(), env, parts...); err != nil {
		t.Fatal(err)
	}
	if want := int64(len(parts[0]) + len(parts[1])); env.Size != want {
		t.Errorf("Size %d, want %d", env.Size, want)
	}
	it, err := sp.Get(env.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := it.Envelope
	if !got.Received.Equal(env.Received) || got.From != env.From || fmt.Sprint(got.To) != fmt.Sprint(env.To) ||
		got.Class != "bulk" || got.Campaign != "c1" || got.User != "odoo" || got.Size != env.Size {
		t.Errorf("stored envelope %+v, sent %+v", got, *env)
	}
	b, _ := sp.Body(env.ID)
	if !bytes.Equal(b, bytes.Join(parts, nil)) {
		t.Errorf("stored body %q", b)
	}
	if it, err := c.Get(env.ID); err != nil || it.Envelope.ID != env.ID {
		t.Errorf("forwarded Get: %v %v", it, err)
	}
}

// TestForwardedErrors: the other queue's refusals come back as the same
// errors (a full queue is ErrFull, so the client still gets 452 4.3.1).
func TestForwardedErrors(t *testing.T) {
	sp := spooltest.Open(t, "", spool.Options{MaxMessages: 1})
	path, _ := serve(t, sp)
	c := forward.NewClient(path, sp.NewID)
	ctx := context.Background()
	if err := c.Admit(100); err != nil {
		t.Fatalf("Admit with room: %v", err)
	}
	if err := c.Put(ctx, envelope(c.NewID()), []byte("x\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := c.Admit(100); !errors.Is(err, queue.ErrFull) {
		t.Errorf("Admit when full: %v, want ErrFull", err)
	}
	if err := c.Put(ctx, envelope(c.NewID()), []byte("x\r\n")); !errors.Is(err, queue.ErrFull) {
		t.Errorf("Put when full: %v, want ErrFull", err)
	}
	if _, err := c.Get("nope"); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("Get of an unknown id: %v, want ErrNotFound", err)
	}
	if err := c.Done(ctx, "x"); err == nil {
		t.Error("Done is not forwarded, yet it succeeded")
	}
}

// TestUnreachable: with nobody at the socket, or when the other process
// goes away during a call, calls fail with ErrUnavailable.
func TestUnreachable(t *testing.T) {
	c := forward.NewClient(filepath.Join(t.TempDir(), "none.sock"), func() string { return "x" })
	if err := c.Put(context.Background(), envelope("a"), []byte("x\r\n")); !errors.Is(err, queue.ErrUnavailable) {
		t.Errorf("Put to nobody: %v, want ErrUnavailable", err)
	}
	if err := c.Admit(1); !errors.Is(err, queue.ErrUnavailable) {
		t.Errorf("Admit to nobody: %v, want ErrUnavailable", err)
	}

	path, srv := serve(t, queue.NewSwitch(nil, time.Minute)) // waits for a queue that never comes
	c = forward.NewClient(path, func() string { return "x" })
	put := make(chan error, 1)
	go func() { put <- c.Put(context.Background(), envelope("b"), []byte("x\r\n")) }()
	time.Sleep(50 * time.Millisecond)
	srv.Close()
	if err := <-put; !errors.Is(err, queue.ErrUnavailable) {
		t.Errorf("Put when the server goes away: %v, want ErrUnavailable", err)
	}
}

// TestHandoverOfPuts is the handover's storing, in one process: Puts run
// without pause on the former process's Switch while its queue is swapped
// for the forwarding client and closed, and the new process opens its
// queue a moment later. Every acknowledged message is in exactly one of
// the two queues, once; nothing failed.
func TestHandoverOfPuts(t *testing.T) {
	dirA := t.TempDir()
	a, err := spool.Open(dirA, spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	oldSide := queue.NewSwitch(a, 20*time.Second)
	newSide := queue.NewSwitch(nil, 20*time.Second)
	path, _ := serve(t, newSide)

	var mu sync.Mutex
	acked := map[string]bool{}
	var failed []error
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				env := envelope(oldSide.NewID())
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				err := oldSide.Put(ctx, env, []byte("Subject: x\r\n\r\nx\r\n"))
				cancel()
				mu.Lock()
				if err != nil {
					failed = append(failed, err)
				} else {
					acked[env.ID] = true
				}
				mu.Unlock()
			}
		}()
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	for count() < 200 {
		time.Sleep(5 * time.Millisecond)
	}
	// The handover: forward, release the queue, and a moment later the
	// new process opens it.
	oldSide.Set(forward.NewClient(path, a.NewID))
	a.Close()
	time.Sleep(100 * time.Millisecond)
	b, err := spool.Open(dirA, spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	newSide.Set(b)
	n := count()
	for count() < n+200 {
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()

	if len(failed) > 0 {
		t.Fatalf("%d Puts failed, the first: %v", len(failed), failed[0])
	}
	seen := map[string]int{}
	for _, it := range b.List() {
		seen[it.Envelope.ID]++
	}
	for id := range acked {
		if seen[id] != 1 {
			t.Errorf("%s acknowledged, in the queue %d times", id, seen[id])
		}
	}
	if len(seen) != len(acked) {
		t.Errorf("%d messages in the queue, %d acknowledged", len(seen), len(acked))
	}
	t.Logf("%d messages acknowledged across the handover", len(acked))
}
