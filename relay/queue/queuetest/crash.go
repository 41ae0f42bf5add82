package queuetest

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/queue"
)

// testCrashKeepsAcknowledged: after a crash, every message Put
// acknowledged and not done is queued with its body and the last state
// SetState acknowledged. A message done may come back (a crash may cost a
// second delivery of what was in flight), but only whole.
func testCrashKeepsAcknowledged(t *testing.T, h Harness) {
	q := open(t, h, Limits{})
	ctx := context.Background()
	var envs []queue.Envelope
	states := map[string]queue.State{}
	for i := range 20 {
		envs = append(envs, put(t, q, i, 100+i*50))
	}
	next := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	for i := 0; i < 20; i += 3 {
		st := queue.State{ID: envs[i].ID, Attempts: i, Next: next, LastError: "451 later", Pending: envs[i].To[1:]}
		if err := q.SetState(ctx, st); err != nil {
			t.Fatal(err)
		}
		states[st.ID] = st
	}
	done := map[string]bool{}
	for i := 0; i < 20; i += 4 {
		if err := q.Done(ctx, envs[i].ID); err != nil {
			t.Fatal(err)
		}
		done[envs[i].ID] = true
	}
	q = q.crash(t)
	checkAfterCrash(t, q, envs, states, done)
}

// checkAfterCrash checks q against what was acknowledged: envs put (in
// order n = 0, 1, … with body(n, 100+n*50)), the latest states, and done
// messages, which may be back but only whole.
func checkAfterCrash(t *testing.T, q queue.Queue, envs []queue.Envelope, states map[string]queue.State, done map[string]bool) {
	t.Helper()
	known := map[string]bool{}
	for n, env := range envs {
		known[env.ID] = true
		_, err := q.Get(env.ID)
		if done[env.ID] && isNotFound(err) {
			continue
		}
		checkItem(t, q, env, body(n, 100+n*50), states[env.ID])
	}
	for _, it := range q.List() {
		if !known[it.Envelope.ID] {
			t.Errorf("after the crash the queue holds %s, which nobody put", it.Envelope.ID)
		}
	}
}

// testCrashDuringPuts: the process dies while sessions are writing. Every
// message acknowledged before the crash is queued whole; of those being
// written, each is there whole or not at all; nothing else appears.
func testCrashDuringPuts(t *testing.T, h Harness) {
	q := open(t, h, Limits{})
	var mu sync.Mutex
	attempted := map[string][]byte{} // every message a session began to put
	var acked []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := g*10000 + i
				env := envelope(q, n)
				b := body(n, 200+(n%7)*3000)
				mu.Lock()
				attempted[env.ID] = b
				mu.Unlock()
				if err := q.Put(context.Background(), env, b); err != nil {
					return // the queue may be closed under it at the end of the test
				}
				mu.Lock()
				acked = append(acked, env.ID)
				mu.Unlock()
			}
		})
	}
	if !eventually(func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 200 }) {
		close(stop)
		wg.Wait()
		t.Fatal("the sessions did not put 200 messages")
	}
	mu.Lock()
	before := append([]string(nil), acked...)
	mu.Unlock()
	after := q.crash(t)
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	for _, id := range before {
		if got, err := after.Body(id); err != nil || !bytes.Equal(got, attempted[id]) {
			t.Errorf("acknowledged %s after the crash: %d bytes, %v; want %d bytes", id, len(got), err, len(attempted[id]))
		}
	}
	for _, it := range after.List() {
		want, ok := attempted[it.Envelope.ID]
		if !ok {
			t.Errorf("after the crash the queue holds %s, which nobody put", it.Envelope.ID)
			continue
		}
		if got, err := after.Body(it.Envelope.ID); err != nil || !bytes.Equal(got, want) || it.Envelope.Size != int64(len(want)) {
			t.Errorf("%s after the crash: %d bytes (size %d), %v; want %d bytes", it.Envelope.ID, len(got), it.Envelope.Size, err, len(want))
		}
	}
	if n := len(after.List()); n < len(before) {
		t.Errorf("%d messages after the crash, %d were acknowledged before it", n, len(before))
	}
}

// testCrashAfterRestart: a crash after a restart keeps what was
// acknowledged before and after the restart.
func testCrashAfterRestart(t *testing.T, h Harness) {
	q := open(t, h, Limits{})
	ctx := context.Background()
	envs := []queue.Envelope{put(t, q, 0, 100), put(t, q, 1, 150)}
	states := map[string]queue.State{envs[0].ID: {ID: envs[0].ID, Attempts: 1, LastError: "451 first"}}
	if err := q.SetState(ctx, states[envs[0].ID]); err != nil {
		t.Fatal(err)
	}
	q = q.restart(t)
	envs = append(envs, put(t, q, 2, 200), put(t, q, 3, 250))
	states[envs[0].ID] = queue.State{ID: envs[0].ID, Attempts: 2, LastError: "451 second", Pending: envs[0].To[:1]}
	states[envs[2].ID] = queue.State{ID: envs[2].ID, Attempts: 1, Next: time.Now().Add(time.Minute).Truncate(time.Millisecond)}
	for _, id := range []string{envs[0].ID, envs[2].ID} {
		if err := q.SetState(ctx, states[id]); err != nil {
			t.Fatal(err)
		}
	}
	done := map[string]bool{envs[1].ID: true}
	if err := q.Done(ctx, envs[1].ID); err != nil {
		t.Fatal(err)
	}
	q = q.crash(t)
	checkAfterCrash(t, q, envs, states, done)
	if n := len(q.List()); n < 3 {
		t.Errorf("%d messages after the crash, want at least 3", n)
	}
}
