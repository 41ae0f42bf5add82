package inspect_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/relay/inspect"
	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/store/storetest"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// TestTwoWriters: during a restart's handover two relay processes record
// into the same store for a moment. Messages both create in the same
// millisecond are all kept (no key is made twice), and what one writes
// about a message the other had cached is not overwritten by the other's
// stale copy; no commit fails.
func TestTwoWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	open := func() *inspect.Store {
		s, err := inspect.Open(path, inspect.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	former, next := open(), open()
	ctx := context.Background()
	flush := func(s *inspect.Store) {
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	env := func(i uint32) queue.Envelope {
		return queue.Envelope{ID: storetest.QueueID(t0, i), Received: t0, From: "bounce@acme.example", To: []string{"a@client.example"}}
	}
	try := trafficlog.Try{Attempt: 1, Transport: "smtp", Reply: mailjet.ParseReply("250 OK queued"),
		Rcpts: []trafficlog.RcptResult{{Rcpt: "a@client.example", Status: "delivered"}}, To: []string{"a@client.example"}}
	const n = 50
	for i := uint32(0); i < n; i++ {
		// Both receive a message in the same millisecond.
		former.Record(trafficlog.NewReceived(env(2*i), true, "", nil))
		next.Record(trafficlog.NewReceived(env(2*i+1), true, "", nil))
		flush(former)
		flush(next)
		// The next process delivers the former's message, which the
		// former then records an attempt about (its copy is stale).
		next.Record(trafficlog.NewDelivered(env(2*i), try))
		flush(next)
		former.Record(trafficlog.NewAttempt(env(2*i), try))
		flush(former)
	}
	for name, s := range map[string]*inspect.Store{"former": former, "next": next} {
		if h := s.Health(); h.WriteErrors != 0 {
			t.Errorf("%s process: %d commits failed", name, h.WriteErrors)
		}
	}
	p, err := next.List(ctx, store.Filter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Messages) != 2*n {
		t.Errorf("%d messages stored, want %d", len(p.Messages), 2*n)
	}
	for i := uint32(0); i < n; i++ {
		m, err := former.Get(ctx, env(2*i).ID)
		if err != nil {
			t.Fatal(err)
		}
		if m.State != store.StateSent {
			t.Errorf("message %d delivered by the next process: state %s", i, m.State)
			break
		}
	}
}
