// Package storetest is what tests of a traffic store and of its users
// need: realistic traffic (the event sequences the relay emits for a
// message, Mailjet's webhook events, a small mixed sample; traffic.go) and
// the conformance suite every store.Store backend must pass (Run).
//
// The suite checks behaviour (states, Mailjet's events joined, filters,
// search, paging, detail, raw bodies, statistics, pruning, errors, reason
// labels, upstream ids, attachment counts, the delivery funnel),
// crash-replay (what a Flush returned for survives a restart and a crash)
// and concurrency (recording while others record, query and receive
// Mailjet's events). It knows nothing of files or servers: a backend's
// test gives it a Harness that says where a store lives and how to open
// it.
package storetest

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/mailjet/webhook"
	"github.com/mjrelay/mjrelay/relay/conformancetest"
	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// Options are what the suite asks of a new store.
type Options struct {
	// Now is the store's clock.
	Now func() time.Time
	// Retention is how long records are kept (0: the backend's default,
	// at least 720h); KeepBodies how long raw messages are kept after the
	// message left the queue (0: none are kept).
	Retention, KeepBodies time.Duration
}

// Harness gives the suite stores of one backend: the backend's test
// implements Place, Open (with the Options asked) and Crash.
type Harness = conformancetest.Harness[store.Store, Options]

// Run runs the suite against h's backend.
func Run(t *testing.T, h Harness) {
	conformancetest.Run(t, h,
		testStates, testRefusedGetsAnID, testAggregatedRefusal, testMailjetJoin, testReceivedAfterAttempt,
		testListFilters, testPaging, testDetail, testNotFound, testRawBodies, testRetention, testStats,
		testStatsBuckets, testHealth, testClosed, testFlushedSurvives, testConcurrentRecordAndQuery,
		testConcurrentMailjetEvents, testReasons, testUpstreamIDs, testAttachments, testFunnel, testSandboxNotMailjet,
		testDeferredStep, testFeedback,
	)
}

// handle is a store the suite opened.
type handle struct {
	store.Store
	inst conformancetest.Instance[store.Store, Options]
}

func (s *handle) restart(t *testing.T) *handle { i := s.inst.Restart(t); return &handle{i.B, i} }
func (s *handle) crash(t *testing.T) *handle   { i := s.inst.Crash(t); return &handle{i.B, i} }

// T0 is when the suite's traffic starts; the stores' clock reads an hour
// later unless a test sets it.
var T0 = time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)

// open opens a new, empty store (its clock an hour past T0 unless o sets
// one).
func open(t *testing.T, h Harness, o Options) *handle {
	if o.Now == nil {
		o.Now = func() time.Time { return T0.Add(time.Hour) }
	}
	i := conformancetest.New(t, h, o)
	return &handle{i.B, i}
}

// Feed records the relay's events, then Mailjet's, each followed by a
// Flush.
func Feed(t testing.TB, s store.Store, evs []trafficlog.Event, mj ...webhook.Event) {
	t.Helper()
	for _, e := range evs {
		s.Record(e)
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(mj) > 0 {
		if err := s.RecordMailjet(context.Background(), mj); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func get(t testing.TB, s store.Store, id string) *store.Message {
	t.Helper()
	m, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return m
}

// list is IDs, by the name the suite's files used first.
func list(t testing.TB, s store.Store, f store.Filter) []string { t.Helper(); return IDs(t, s, f) }

// IDs lists the ids of the messages f selects (the first page).
func IDs(t testing.TB, s store.Store, f store.Filter) []string {
	t.Helper()
	p, err := s.List(context.Background(), f)
	if err != nil {
		t.Fatalf("List(%+v): %v", f, err)
	}
	var ids []string
	for _, m := range p.Messages {
		ids = append(ids, m.ID)
	}
	return ids
}

// Kinds are the kinds of the steps of m's timeline.
func Kinds(m *store.Message) []string {
	var out []string
	for _, st := range m.Timeline {
		out = append(out, st.Kind)
	}
	return out
}

func rcptStates(m *store.Message) map[string]store.State {
	out := map[string]store.State{}
	for _, r := range m.Recipients {
		out[r.Rcpt] = r.State
	}
	return out
}

// sampleStates returns the states the sample's messages end in, with its
// Mailjet events.
func sampleStates() map[string]store.State {
	return map[string]store.State{"invoice": store.StateDelivered, "newsletter": store.StateBounced,
		"retry": store.StateDeferred, "failed": store.StateFailed, "sandbox": store.StateSandboxed}
}

// checkSample checks that s holds the sample, recorded with its Mailjet
// events and raw bodies: every message in its state (states, by the
// sample's names), the refusal, and the invoice's timeline, raw body and
// Mailjet id.
func checkSample(t *testing.T, s store.Store, sample *Sample, states map[string]store.State) {
	t.Helper()
	for name, want := range states {
		if m := get(t, s, sample.IDs[name]); m.State != want {
			t.Errorf("%s: state %q, want %q", name, m.State, want)
		}
	}
	if ids := IDs(t, s, store.Filter{State: store.StateRefused}); len(ids) != 1 {
		t.Errorf("refusals: %v, want one", ids)
	}
	inv := get(t, s, sample.IDs["invoice"])
	if want := []string{"received", "policy", "attempt", "delivered", "mailjet:sent"}; !slices.Equal(Kinds(inv), want) {
		t.Errorf("invoice timeline = %v, want %v", Kinds(inv), want)
	}
	if r, n, err := s.Raw(context.Background(), inv.ID); err != nil || n == 0 {
		t.Errorf("invoice raw body: %v, %d bytes", err, n)
	} else if b, _ := io.ReadAll(r); !strings.Contains(string(b), "Hello Mr. X") {
		t.Errorf("invoice raw body = %q", b)
	}
	if ids := IDs(t, s, store.Filter{Q: "288230376151711744"}); !slices.Equal(ids, []string{sample.IDs["invoice"]}) {
		t.Errorf("search by Mailjet id: %v", ids)
	}
}
