package pgstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/mailjet/webhook"
	"github.com/mjrelay/mjrelay/relay/pg/pgtest"
	"github.com/mjrelay/mjrelay/relay/pgstore"
	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/store/storetest"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// TestOutage: while PostgreSQL is down, Record does not wait (what does
// not fit the buffer is dropped and counted) and RecordMailjet waits until
// its context ends (the webhook answers 503, Mailjet retries); once the
// database is back, what was buffered is stored.
func TestOutage(t *testing.T) {
	c := pgtest.New(t)
	url := c.DB(t)
	s := openStore(t, url, pgstore.Options{Options: store.Options{Now: later, Buffer: 64}, CloseWait: time.Second})
	ctx := context.Background()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	const n = 1000
	for i := range n {
		at := t0.Add(time.Duration(i) * time.Second)
		s.Record(trafficlog.Event{Time: at, Event: trafficlog.Received, ID: storetest.QueueID(at, uint32(i)),
			From: "a@acme.example", To: []string{"b@b.example"}, Subject: "during the outage"})
	}
	dropped := s.Health().DroppedEvents
	if dropped == 0 {
		t.Fatal("no drops counted with a 64-event buffer and the database down")
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	// More than a batch and the buffer hold: the writer cannot take them all.
	mj := make([]webhook.Event, 10_000)
	for i := range mj {
		mj[i] = storetest.Mailjet(t0, "open", storetest.QueueID(t0, 1), "b@b.example", 0)
	}
	if err := s.RecordMailjet(short, mj); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("RecordMailjet with the buffer full: %v, want the context's end", err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := s.List(ctx, store.Filter{Q: "outage", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if got := uint64(len(p.Messages)) + s.Health().DroppedEvents; got != n || len(p.Messages) == 0 {
		t.Errorf("stored %d + dropped %d, want %d recorded", len(p.Messages), s.Health().DroppedEvents, n)
	}

	// Closed while the database is down: Close gives up after CloseWait,
	// and counts what it could not store.
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	before := s.Health().DroppedEvents
	s.Record(trafficlog.Event{Time: t0, Event: trafficlog.Received, ID: storetest.QueueID(t0, n+1), From: "a@acme.example"})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if h := s.Health(); h.DroppedEvents != before+1 || h.Pending != 0 {
		t.Errorf("after Close with the database down: %+v (dropped %d before)", h, before)
	}
}

// TestOpenWhileAway: the store of a node that starts while PostgreSQL is
// down opens; what is recorded meanwhile is buffered, and stored once
// the server answers (the schema is created first).
func TestOpenWhileAway(t *testing.T) {
	c := pgtest.New(t)
	ctx := context.Background()
	s, err := pgstore.Open(ctx, pgstore.Options{Options: store.Options{Now: later}, Pool: c.StoppedPool(t)})
	if err != nil {
		t.Fatalf("Open with the server stopped: %v", err)
	}
	defer s.Close()
	const n = 20
	for i := range n {
		at := t0.Add(time.Duration(i) * time.Second)
		s.Record(trafficlog.Event{Time: at, Event: trafficlog.Received, ID: storetest.QueueID(at, uint32(i)),
			From: "a@acme.example", To: []string{"b@b.example"}, Subject: "before the database"})
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := s.List(ctx, store.Filter{Q: "database", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Messages) != n || s.Health().DroppedEvents != 0 {
		t.Errorf("stored %d, dropped %d; want %d and 0", len(p.Messages), s.Health().DroppedEvents, n)
	}
}
