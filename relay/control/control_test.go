package control_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/control"
	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/spool"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// serve runs the control API over q on a unix socket until the test ends,
// as the relay does (control.ListenUnix, control.Handler), and returns a
// client once it answers.
func serve(t *testing.T, q control.Queue) *control.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "control.sock")
	l, err := control.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: control.Handler(q, nil), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Error(err)
		}
	})
	c := control.NewClient(sock)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := c.List(context.Background()); err == nil {
			return c
		} else if time.Now().After(deadline) {
			t.Fatalf("the control socket does not answer: %v", err)
		}
	}
}

// TestClientSendsIDsAsTyped: an id with characters that mean something in
// a URL (typed by hand: `mjrelay queue delete 'a&id=b'`) reaches the server
// as it was typed: the action applies to that message, never to another.
func TestClientSendsIDsAsTyped(t *testing.T) {
	sp, err := spool.Open(t.TempDir(), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	ids := []string{"a&id=b", "c d", "e#f", "g%2Fh", "i+j", "k?l=m", "n/o;p", "é"}
	// Decoys: what the ids above would be taken for without escaping.
	decoys := []string{"a", "c", "e", "g/h", "i j", "k"}
	ctx := context.Background()
	for _, id := range append(append([]string(nil), ids...), decoys...) {
		env := &queue.Envelope{ID: id, Received: time.Now(), From: "a@acme.example", To: []string{"b@client.example"}}
		if err := sp.Put(ctx, env, []byte("Subject: x\r\n\r\nx\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	traffic := &trafficlog.Memory{}
	c := serve(t, control.Offline{Queue: sp, Traffic: traffic})
	for _, id := range ids {
		t.Run(id, func(t *testing.T) {
			if n, err := c.Retry(ctx, id); err != nil || n != 1 {
				t.Fatalf("Retry(%q) = %d, %v; want 1", id, n, err)
			}
			if err := c.Delete(ctx, id); err != nil {
				t.Fatalf("Delete(%q): %v", id, err)
			}
			if _, err := sp.Get(id); !errors.Is(err, queue.ErrNotFound) {
				t.Errorf("%q is still queued after Delete: %v", id, err)
			}
			evs := traffic.Events(trafficlog.Deleted)
			if last := evs[len(evs)-1]; last.ID != id {
				t.Errorf("the deletion was recorded for %q, want %q", last.ID, id)
			}
		})
	}
	l, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, it := range l.Items {
		left = append(left, it.Envelope.ID)
	}
	if len(left) != len(decoys) || l.Stats.Messages != len(decoys) {
		t.Errorf("left in the queue: %q, want the decoys %q", left, decoys)
	}
	if n, err := c.Retry(ctx, ""); err != nil || n != len(decoys) {
		t.Errorf("Retry of all = %d, %v; want %d", n, err, len(decoys))
	}
	if err := c.Delete(ctx, "nope&id=a"); err == nil || err.Error() != queue.ErrNotFound.Error() {
		t.Errorf("Delete of an unknown id: %v, want %v", err, queue.ErrNotFound)
	}
}
