package inspect_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/mjrelay/mjrelay/relay/inspect"
	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/store/storetest"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

var t0 = storetest.T0

// TestRecordNeverBlocks fills the buffer while the writer cannot commit
// (another connection holds the write lock): Record returns and counts the
// drops, and what fitted is stored once the lock is gone.
func TestRecordNeverBlocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := inspect.Open(path, inspect.Options{Buffer: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	unlock := lockDB(t, path)
	for i := range 1000 {
		id := storetest.QueueID(t0, uint32(i))
		s.Record(trafficlog.Event{Time: t0, Event: trafficlog.Received, ID: id, From: "a@b.example", To: []string{"c@d.example"}})
	}
	ev := s.Health().DroppedEvents
	if ev == 0 {
		t.Fatal("no drops counted with a 16-entry buffer and a blocked writer")
	}
	unlock()
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	p, err := s.List(context.Background(), store.Filter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Messages)+int(ev) != 1000 {
		t.Errorf("stored %d + dropped %d != 1000 recorded", len(p.Messages), ev)
	}
}

// TestReadOnly: a store opened read-only (mjrelay log) answers queries and
// wants no bodies; opening a missing one read-only fails.
func TestReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := inspect.Open(path, inspect.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sample := storetest.NewSample(t0)
	for _, e := range sample.Events {
		s.Record(e)
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := inspect.Open(path, inspect.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if ro.WantsBodies() {
		t.Error("a read-only store wants bodies")
	}
	if m, err := ro.Get(context.Background(), sample.IDs["failed"]); err != nil || m.State != "failed" {
		t.Errorf("read-only: %+v, %v", m, err)
	}
	if _, err := inspect.Open(filepath.Join(t.TempDir(), "none.db"), inspect.Options{ReadOnly: true}); err == nil {
		t.Error("opening a missing store read-only succeeded")
	}
}
