package pgstore_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/mailjet/webhook"
	"github.com/mjrelay/mjrelay/relay/pg/pgtest"
	"github.com/mjrelay/mjrelay/relay/pgstore"
	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/store/storetest"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

var t0 = storetest.T0

func later() time.Time { return t0.Add(time.Hour) }

// TestTwoNodes: two nodes on one database record the same messages at
// once, one the receipts, the other the deliveries (which often reach
// the store first), and Mailjet's webhook events arrive on either node,
// some with the queue id, some with Mailjet's id only. Both nodes see
// every message received, delivered by Mailjet, with its whole timeline
// and each event counted once.
func TestTwoNodes(t *testing.T) {
	url := pgtest.DB(t)
	a := openStore(t, url, pgstore.Options{Options: store.Options{Now: later}})
	b := openStore(t, url, pgstore.Options{Options: store.Options{Now: later}})
	const n = 400
	flows := make([][]trafficlog.Event, n)
	var mj []webhook.Event
	for i := range n {
		at := t0.Add(time.Duration(i) * 100 * time.Millisecond)
		id, rcpt, mjID := storetest.QueueID(at, uint32(i)), fmt.Sprintf("r%d@x.example", i), int64(1e15)+int64(i)
		ok := trafficlog.RcptResult{Rcpt: rcpt, Status: "delivered", Reply: mailjet.ParseReply("250 OK"), MessageID: mjID}
		flows[i] = storetest.NewFlow(at, id, "s@acme.example", []string{rcpt}, fmt.Sprintf("Invoice %d", i)).
			Received(nil).Attempt("api", "250 OK", ok).Delivered().Events()
		ev := storetest.Mailjet(at.Add(time.Minute), "sent", id, rcpt, mjID)
		if i%2 == 1 {
			ev.CustomID = "" // joined by Mailjet's id, which the other node recorded
		}
		mj = append(mj, ev)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for _, f := range flows {
			a.Record(f[0])
		}
	})
	wg.Go(func() {
		for _, f := range flows {
			for _, e := range f[1:] {
				b.Record(e)
			}
		}
	})
	wg.Wait()
	flush(t, a, b)
	ctx := context.Background()
	for i := 0; i < n; i += 50 {
		node := []*pgstore.Store{a, b}[i/50%2]
		if err := node.RecordMailjet(ctx, mj[i:i+50]); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, a, b)
	for _, s := range []*pgstore.Store{a, b} {
		p, err := s.List(ctx, store.Filter{State: store.StateDelivered, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Messages) != n {
			t.Errorf("%d messages delivered, want %d", len(p.Messages), n)
		}
		for _, i := range []int{0, 1, n - 1} {
			m, err := s.Get(ctx, flows[i][0].ID)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := storetest.Kinds(m), []string{"received", "policy", "attempt", "delivered", "mailjet:sent"}; !slices.Equal(got, want) ||
				m.Subject != fmt.Sprintf("Invoice %d", i) || m.Client == "" || len(m.Recipients) != 1 {
				t.Errorf("message %d: timeline %v, %+v", i, got, m.Summary)
			}
		}
		st, err := s.Stats(ctx, t0.Add(-time.Hour), t0.Add(2*time.Hour), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"received", "attempt", "delivered", "final", "mj_sent"} {
			if st.Totals[k] != n {
				t.Errorf("%s counted %d times, want %d", k, st.Totals[k], n)
			}
		}
		if h := s.Health(); h != (store.Health{}) {
			t.Errorf("health %+v", h)
		}
	}
}

// TestNewMessageRace: a message another node inserts while a batch
// creates it (the batch found it absent, then met it at insert) is
// locked and the batch's events are applied to it; a key another message
// took meanwhile is replaced by the next.
func TestNewMessageRace(t *testing.T) {
	for _, tc := range []struct {
		name string
		// taken inserts, in tx, what the other node inserts meanwhile
		taken func(tx pgx.Tx, id string, key int64) error
		// subject is the message's subject afterwards
		subject string
	}{
		{"the id", func(tx pgx.Tx, id string, key int64) error {
			ctx := context.Background()
			if _, err := tx.Exec(ctx, `INSERT INTO store_messages (key, id, received_at, updated_at, state, subject, rcpt_to)
				VALUES ($1, $2, 0, 0, 'queued', 'from the other node', 'b@b.example')`, key+7, id); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO store_rcpts (key, rcpt, state, updated_at) VALUES ($1, 'b@b.example', 'queued', 0)`, key+7)
			return err
		}, "from the other node"},
		{"the key", func(tx pgx.Tx, id string, key int64) error {
			_, err := tx.Exec(context.Background(), `INSERT INTO store_messages (key, id, received_at, updated_at, state)
				VALUES ($1, 'another', 0, 0, 'queued')`, key)
			return err
		}, "mine"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := pgtest.DB(t)
			s := openStore(t, url, pgstore.Options{Options: store.Options{Now: later}})
			ctx := context.Background()
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			id := storetest.QueueID(t0, 1)
			s.SetKeyN(42)
			if err := tc.taken(tx, id, store.KeyAt(t0)+42); err != nil {
				t.Fatal(err)
			}
			ok := trafficlog.RcptResult{Rcpt: "b@b.example", Status: "delivered", Reply: mailjet.ParseReply("250 OK")}
			evs := storetest.NewFlow(t0, id, "a@acme.example", []string{"b@b.example"}, "mine").Attempt("smtp", "250 OK", ok).Delivered().Events()
			for _, e := range evs {
				e.Subject = "mine"
				s.Record(e)
			}
			flushed := make(chan error, 1)
			go func() { flushed <- s.Flush(ctx) }()
			waitFor(t, "the batch to wait on the other node's insert", func() bool {
				var n int
				conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n)
				return n > 0
			})
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if err := <-flushed; err != nil {
				t.Fatal(err)
			}
			m, err := s.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if m.State != store.StateSent || m.Subject != tc.subject || len(m.AttemptList) != 1 || len(m.Recipients) != 1 {
				t.Errorf("after the race: %+v, %+v", m.Summary, m.Recipients)
			}
			if h := s.Health(); h.WriteErrors != 0 || h.DroppedEvents != 0 {
				t.Errorf("health %+v", h)
			}
		})
	}
}

// TestRecordTwice: events recorded again (by the same node or another: a
// batch retried after its commit's answer was lost, a webhook delivered
// twice) are stored and counted once.
func TestRecordTwice(t *testing.T) {
	url := pgtest.DB(t)
	a := openStore(t, url, pgstore.Options{Options: store.Options{Now: later, KeepBodies: time.Hour}})
	b := openStore(t, url, pgstore.Options{Options: store.Options{Now: later, KeepBodies: time.Hour}})
	sample := storetest.NewSample(t0)
	var evs []trafficlog.Event
	for _, e := range sample.Events {
		if e.Event != trafficlog.Refused { // a refusal has no id: each is one of its own
			evs = append(evs, e)
		}
	}
	ctx := context.Background()
	record := func(s *pgstore.Store) {
		for _, e := range evs {
			s.Record(e)
		}
		flush(t, s)
		if err := s.RecordMailjet(ctx, sample.Mailjet); err != nil {
			t.Fatal(err)
		}
		flush(t, s)
	}
	record(a)
	before := snapshot(t, a, sample)
	record(a)
	record(b)
	if after := snapshot(t, b, sample); after != before {
		t.Errorf("recorded again:\n%s\nwas\n%s", after, before)
	}
}

// snapshot describes what s holds of the sample.
func snapshot(t *testing.T, s store.Store, sample *storetest.Sample) string {
	t.Helper()
	ctx := context.Background()
	out := ""
	for _, name := range []string{"invoice", "newsletter", "retry", "failed", "sandbox"} {
		m, err := s.Get(ctx, sample.IDs[name])
		if err != nil {
			t.Fatal(err)
		}
		out += fmt.Sprintf("%s %s %v %d attempts %v\n", name, m.State, storetest.Kinds(m), len(m.AttemptList), m.Recipients)
	}
	st, err := s.Stats(ctx, t0.Add(-time.Hour), t0.Add(time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.List(ctx, store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return out + fmt.Sprintf("totals %v, %d listed", st.Totals, len(p.Messages))
}

func flush(t *testing.T, ss ...*pgstore.Store) {
	t.Helper()
	for _, s := range ss {
		if err := s.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// waitFor waits until cond holds (a minute at most).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPruneOneNodeAtATime: the periodic pruning leaves the work to the
// node that is pruning (it holds the lock), and does it when none is.
func TestPruneOneNodeAtATime(t *testing.T) {
	url := pgtest.DB(t)
	var now atomic.Int64
	now.Store(t0.UnixNano())
	s := openStore(t, url, pgstore.Options{Options: store.Options{Retention: 24 * time.Hour, Now: func() time.Time { return time.Unix(0, now.Load()) }}})
	ok := trafficlog.RcptResult{Rcpt: "b@b.example", Status: "delivered", Reply: mailjet.ParseReply("250 OK")}
	for _, e := range storetest.NewFlow(t0, storetest.QueueID(t0, 1), "a@acme.example", []string{ok.Rcpt}, "old").
		Received(nil).Attempt("smtp", "250 OK", ok).Delivered().Events() {
		s.Record(e)
	}
	flush(t, s)
	now.Store(t0.Add(30 * time.Hour).UnixNano())
	ctx := context.Background()
	other, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	if _, err := other.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(pgstore.PruneLock)); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		p, err := s.List(ctx, store.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		return len(p.Messages)
	}
	if err := s.PruneIfFree(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Fatalf("pruned while another node prunes: %d messages left", n)
	}
	if _, err := other.Exec(ctx, `SELECT pg_advisory_unlock($1)`, int64(pgstore.PruneLock)); err != nil {
		t.Fatal(err)
	}
	if err := s.PruneIfFree(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Fatalf("not pruned when no other node prunes: %d messages left", n)
	}
}

// TestReadOnlyOnEmptyDatabase: queries alone (mjrelay log) on a database
// no node has used say so, and create nothing.
func TestReadOnlyOnEmptyDatabase(t *testing.T) {
	url := pgtest.DB(t)
	_, err := pgstore.Open(context.Background(), pgstore.Options{Options: store.Options{ReadOnly: true}, Pool: pgtest.Pool(t, url, 2)})
	if err == nil || !strings.Contains(err.Error(), "no node has started") {
		t.Fatalf("read-only open of an empty database: %v", err)
	}
	s := openStore(t, url, pgstore.Options{})
	s.Close()
	r := openStore(t, url, pgstore.Options{Options: store.Options{ReadOnly: true}})
	if _, err := r.List(context.Background(), store.Filter{}); err != nil {
		t.Fatal(err)
	}
}
