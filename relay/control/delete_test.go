package control_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/control"
	"github.com/mjrelay/mjrelay/relay/deliver"
	"github.com/mjrelay/mjrelay/relay/lanes"
	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/spool"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

type deleter interface {
	Delete(ctx context.Context, id string) error
}

// TestDeleteRecordsTheSameEvent: deleting a message through a running
// server (the scheduler) and from the command line with no server running
// record the same deleted event: the whole envelope, as any other event
// about the message.
func TestDeleteRecordsTheSameEvent(t *testing.T) {
	env := queue.Envelope{Received: time.Now(), From: "bounce@example.com", To: []string{"a@example.org"},
		User: "odoo", Client: "192.0.2.1:4000", Helo: "odoo.example", HeaderFrom: "john@example.com",
		Subject: "Invoice 42", MessageID: "<42@odoo.example>", Class: "bulk", ClassRule: "list-unsubscribe-post"}
	tests := []struct {
		name string
		q    func(sp *spool.Spool, rec trafficlog.Recorder) deleter
	}{
		{"online", func(sp *spool.Spool, rec trafficlog.Recorder) deleter {
			sched := deliver.New(sp, deliver.Options{Lanes: []lanes.Lane{{Class: lanes.Transactional}}, Traffic: rec})
			return control.Live{Queue: sp, Sched: sched}
		}},
		{"offline", func(sp *spool.Spool, rec trafficlog.Recorder) deleter {
			return control.Offline{Queue: sp, Traffic: rec}
		}},
	}
	var events []trafficlog.Event
	for _, tc := range tests {
		sp, err := spool.Open(t.TempDir(), spool.Options{})
		if err != nil {
			t.Fatal(err)
		}
		e := env
		e.ID = sp.NewID()
		if err := sp.Put(context.Background(), &e, []byte("Subject: Invoice 42\r\n\r\nbody\r\n")); err != nil {
			t.Fatal(err)
		}
		var mem trafficlog.Memory
		if err := tc.q(sp, &mem).Delete(context.Background(), e.ID); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := mem.Events(trafficlog.Deleted)
		if len(got) != 1 {
			t.Fatalf("%s: %d deleted events", tc.name, len(got))
		}
		d := got[0]
		fields := []any{d.ID, d.Client, d.User, d.From, d.To, d.HeaderFrom, d.Subject, d.MessageID, d.Size, d.Class, d.ClassRule}
		want := []any{e.ID, e.Client, e.User, e.From, e.To, e.HeaderFrom, e.Subject, e.MessageID, e.Size, e.Class, e.ClassRule}
		if !reflect.DeepEqual(fields, want) {
			t.Errorf("%s: deleted event %v, want %v", tc.name, fields, want)
		}
		d.ID, d.Reason = "", ""
		events = append(events, d)
		sp.Close()
	}
	if !reflect.DeepEqual(events[0], events[1]) {
		t.Errorf("online and offline deletions differ:\n%+v\n%+v", events[0], events[1])
	}
}
