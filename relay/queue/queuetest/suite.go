// Package queuetest is the conformance suite every queue.Queue backend
// must pass: behaviour (put, get, body, list order, states, done, errors,
// ids, subscriptions, limits, restart), crash-replay (what Put and
// SetState acknowledged survives the process dying at any instant, and
// nothing else appears) and concurrency (parallel puts, racing Done and
// SetState, readers during writes). It knows nothing of files or servers:
// a backend's test gives it a Harness that says where a queue lives and
// how to open it.
package queuetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/conformancetest"
	"github.com/mjrelay/mjrelay/relay/queue"
)

// Limits are the queue limits a test sets; 0 is no limit.
type Limits struct {
	MaxMessages int
	MaxBytes    int64 // bytes of queued messages
}

// Harness gives the suite queues of one backend: the backend's test
// implements Place, Open (with the Limits asked) and Crash.
type Harness = conformancetest.Harness[queue.Queue, Limits]

// Run runs the suite against h's backend.
func Run(t *testing.T, h Harness) {
	conformancetest.Run(t, h,
		testPutGet, testBody, testListOldestFirst, testSetState, testDone, testNotFound, testIDs, testSubscribe,
		testLimits, testRestart, testClosed, testCrashKeepsAcknowledged, testCrashDuringPuts, testCrashAfterRestart,
		testParallelPuts, testRacingDoneAndSetState, testReadersDuringWrites,
	)
}

// handle is a queue the suite opened.
type handle struct {
	queue.Queue
	inst conformancetest.Instance[queue.Queue, Limits]
}

func open(t *testing.T, h Harness, l Limits) *handle {
	i := conformancetest.New(t, h, l)
	return &handle{i.B, i}
}

func (q *handle) restart(t *testing.T) *handle { i := q.inst.Restart(t); return &handle{i.B, i} }
func (q *handle) crash(t *testing.T) *handle   { i := q.inst.Crash(t); return &handle{i.B, i} }

// envelope returns a full envelope for a new message of q.
func envelope(q queue.Queue, n int) *queue.Envelope {
	return &queue.Envelope{ID: q.NewID(), Received: time.Now().Truncate(time.Millisecond),
		From: fmt.Sprintf("sender%d@acme.example", n), To: []string{"a@client.example", fmt.Sprintf("b%d@client.example", n)},
		User: "odoo", Client: "192.0.2.10:51234", Helo: "odoo.example", UTF8: n%2 == 0,
		HeaderFrom: "Acme <sender@acme.example>", Subject: fmt.Sprintf("Invoice %d", n), MessageID: fmt.Sprintf("<%d@odoo.example>", n),
		Class: "bulk", ClassRule: "list-unsubscribe-post", Campaign: "spring", Hold: hold(n)}
}

// hold is message n's Hold: every third message was accepted held.
func hold(n int) string {
	if n%3 != 0 {
		return ""
	}
	return "sender not checked yet: the Mailjet account state is unknown"
}

// body returns message n's bytes (about size bytes).
func body(n, size int) []byte {
	head := fmt.Sprintf("Subject: Invoice %d\r\n\r\n", n)
	return append([]byte(head), bytes.Repeat([]byte{byte('a' + n%26)}, max(size-len(head), 0))...)
}

// put stores message n with a body of about size bytes and returns its
// envelope as stored.
func put(t testing.TB, q queue.Queue, n, size int) queue.Envelope {
	t.Helper()
	env := envelope(q, n)
	if err := q.Put(context.Background(), env, body(n, size)); err != nil {
		t.Fatalf("Put: %v", err)
	}
	return *env
}

// checkItem checks that q holds the message env with body b and state st
// (st.ID empty: the fresh state).
func checkItem(t testing.TB, q queue.Queue, env queue.Envelope, b []byte, st queue.State) {
	t.Helper()
	it, err := q.Get(env.ID)
	if err != nil {
		t.Fatalf("Get(%s): %v", env.ID, err)
	}
	if !sameEnvelope(it.Envelope, env) {
		t.Errorf("Get(%s).Envelope = %+v, want %+v", env.ID, it.Envelope, env)
	}
	if st.ID == "" {
		st.ID = env.ID
	}
	if !sameState(it.State, st) {
		t.Errorf("Get(%s).State = %+v, want %+v", env.ID, it.State, st)
	}
	got, err := q.Body(env.ID)
	if err != nil || !bytes.Equal(got, b) {
		t.Errorf("Body(%s) = %d bytes (%q…), %v; want %d bytes", env.ID, len(got), clip(got), err, len(b))
	}
}

func sameEnvelope(a, b queue.Envelope) bool {
	return a.Received.Equal(b.Received) && fmt.Sprint(a.To) == fmt.Sprint(b.To) &&
		fmt.Sprint(withoutTime(a)) == fmt.Sprint(withoutTime(b))
}

func withoutTime(e queue.Envelope) queue.Envelope {
	e.Received = time.Time{}
	return e
}

func sameState(a, b queue.State) bool {
	return a.ID == b.ID && a.Attempts == b.Attempts && a.Next.Equal(b.Next) && a.LastError == b.LastError && a.Released == b.Released &&
		fmt.Sprint(a.Pending) == fmt.Sprint(b.Pending) && (a.Pending == nil) == (b.Pending == nil)
}

func clip(b []byte) []byte { return b[:min(len(b), 40)] }

func ids(items []queue.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Envelope.ID
	}
	return out
}

func isNotFound(err error) bool { return errors.Is(err, queue.ErrNotFound) }
