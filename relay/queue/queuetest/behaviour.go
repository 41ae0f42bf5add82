package queuetest

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/queue"
)

// testPutGet: Put sets the size; Get returns every envelope field and a
// fresh state.
func testPutGet(t *testing.T, h Harness) {
	q := open(t, h, Limits{})
	env := envelope(q, 1)
	b := body(1, 300)
	if err := q.Put(context.Background(), env, b); err != nil {
		t.Fatal(err)
	}
	if env.Size != int64(len(b)) {
		t.Errorf("Put set Size %d, want %d", env.Size, len(b))
	}
	checkItem(t, q, *env, b, queue.State{})
	if st := q.Stats(); st.Messages != 1 {
		t.Errorf("Stats = %+v, want 1 message", st)
	}
}

// testBody: the message is the concatenation of Put's parts, byte for
// byte.
func testBody(t *testing.T, h Harness) {
	tests := []struct {
		name  string
		parts [][]byte
	}{
		{"one part", [][]byte{[]byte("Subject: x\r\n\r\nhello\r\n")}},
		{"header and body parts", [][]byte{[]byte("Received: from odoo\r\n"), []byte("Subject: x\r\n\r\n"), []byte("hello\r\n")}},
		{"empty parts among others", [][]byte{nil, []byte("Subject: x\r\n\r\n"), {}, []byte("b\r\n")}},
		{"8-bit, NUL and bare CR", [][]byte{[]byte("Subject: caf\xc3\xa9\r\n\r\n\x00\x01\xff\rbare\nlf\r\n")}},
		{"a line like a record", [][]byte{[]byte("Subject: x\r\n\r\nMJR2M\x00\x00\x00\x10\r\n.\r\n")}},
		{"1 MiB", [][]byte{[]byte("Subject: big\r\n\r\n"), bytes.Repeat([]byte("0123456789abcdef"), 1<<16)}},
	}
	q := open(t, h, Limits{})
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := envelope(q, i)
			if err := q.Put(context.Background(), env, tc.parts...); err != nil {
				t.Fatal(err)
			}
			want := bytes.Join(tc.parts, nil)
			if env.Size != int64(len(want)) {
				t.Errorf("Size = %d, want %d", env.Size, len(want))
			}
			checkItem(t, q, *env, want, queue.State{})
		})
	}
}

// testListOldestFirst: List is in id order (ids sort by time), whatever
// order the messages were put in.
func testListOldestFirst(t *testing.T, h Harness) {
	q := open(t, h, Limits{})
	envs := make([]*queue.Envelope, 5)
	for i := range envs {
		envs[i] = envelope(q, i)
	}
	for _, i := range []int{3, 0, 4, 1, 2} {
		if err := q.Put(context.Background(), envs[i], body(i, 50)); err != nil {
			t.Fatal(err)
		}
	}
	want := make([]string, len(envs))
	for i, e := range envs {
		want[i] = e.ID
	}
	items := q.List()
	if got := ids(items); !slices.Equal(got, want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
	for i, it := range items {
		if !sameEnvelope(it.Envelope, *envs[i]) || it.State.ID != envs[i].ID {
			t.Errorf("List[%d] = %+v, want %+v", i, it, *envs[i])
		}
	}
	if st := q.Stats(); st.Messages != len(envs) {
		t.Errorf("Stats = %+v, want %d messages", st, len(envs))
	}
}

// testSetState: the latest state shows in Get and List; the message stays
// as it was.
func testSetState(t *testing.T, h Harness) {
	q := open(t, h, Limits{})
	ctx := context.Background()
	env := put(t, q, 3, 200)
	other := put(t, q, 2, 200)
	if it, err := q.Get(env.ID); err != nil || it.Held() != hold(3) || hold(3) == "" {
		t.Fatalf("a message put with a Hold: Held() = %q, %v", it.Held(), err)
	}
	next := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	states := []queue.State{
		{ID: env.ID, Released: true},
		{ID: env.ID, Attempts: 1, Next: next, LastError: "451 4.7.0 later", Pending: []string{"b1@client.example"}, Released: true},
		{ID: env.ID, Attempts: 2, Next: next.Add(time.Hour), LastError: "421 again", Released: true},
	}
	for _, st := range states {
		if err := q.SetState(ctx, st); err != nil {
			t.Fatal(err)
		}
		checkItem(t, q, env, body(3, 200), st)
		if it, _ := q.Get(env.ID); it.Held() != "" {
			t.Errorf("released, yet Held() = %q", it.Held())
		}
	}
	if items := q.List(); len(items) != 2 || !sameState(items[0].State, states[2]) || !sameState(items[1].State, queue.State{ID: other.ID}) {
		t.Errorf("List = %+v", items)
	}
	// The hold and its release survive a restart.
	q = q.restart(t)
	checkItem(t, q, env, body(3, 200), states[2])
}

// testDone: a message done is gone for every call at once; a second Done
// is ErrNotFound; the others stay.
func testDone(t *testing.T, h Harness) {
	q := open(t, h, Limits{})
	ctx := context.Background()
	gone, kept := put(t, q, 1, 100), put(t, q, 2, 100)
	if err := q.Done(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		call func() error
	}{
		{"Get", func() error { _, err := q.Get(gone.ID); return err }},
		{"Body", func() error { _, err := q.Body(gone.ID); return err }},
		{"SetState", func() error { return q.SetState(ctx, queue.State{ID: gone.ID, Attempts: 1}) }},
		{"Done", func() error { return q.Done(ctx, gone.ID) }},
	}
	for _, c := range checks {
		if err := c.call(); !isNotFound(err) {
			t.Errorf("%s after Done: %v, want ErrNotFound", c.name, err)
		}
	}
	if got := ids(q.List()); !slices.Equal(got, []string{kept.ID}) {
		t.Errorf("List after Done = %v, want [%s]", got, kept.ID)
	}
	if st := q.Stats(); st.Messages != 1 {
		t.Errorf("Stats after Done = %+v, want 1 message", st)
	}
	checkItem(t, q, kept, body(2, 100), queue.State{})
}

// testNotFound: every call on an id the queue never had says
// ErrNotFound.
func testNotFound(t *testing.T, h Harness) {
	q := open(t, h, Limits{})
	ctx := context.Background()
	put(t, q, 1, 100)
	for _, id := range []string{q.NewID(), "nope", ""} {
		if _, err := q.Get(id); !isNotFound(err) {
			t.Errorf("Get(%q): %v", id, err)
		}
		if _, err := q.Body(id); !isNotFound(err) {
			t.Errorf("Body(%q): %v", id, err)
		}
		if err := q.SetState(ctx, queue.State{ID: id, Attempts: 1}); !isNotFound(err) {
			t.Errorf("SetState(%q): %v", id, err)
		}
		if err := q.Done(ctx, id); !isNotFound(err) {
			t.Errorf("Done(%q): %v", id, err)
		}
	}
	if n := len(q.List()); n != 1 {
		t.Errorf("List holds %d messages, want 1", n)
	}
}

// testIDs: ids are unique, also when taken at once, and sort by time.
func testIDs(t *testing.T, h Harness) {
	q := open(t, h, Limits{})
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 500 {
				id := q.NewID()
				mu.Lock()
				if seen[id] || id == "" {
					t.Errorf("NewID gave %q twice", id)
				}
				seen[id] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	var later []string
	for range 5 {
		later = append(later, q.NewID())
		time.Sleep(2 * time.Millisecond)
	}
	if !sort.StringsAreSorted(later) {
		t.Errorf("ids taken 2 ms apart do not sort by time: %v", later)
	}
}

// testSubscribe: a subscriber sees the messages queued when it subscribes
// (not those done), then each new one with its envelope; every
// subscriber does.
func testSubscribe(t *testing.T, h Harness) {
	q := open(t, h, Limits{})
	ctx := context.Background()
	a, done := put(t, q, 1, 100), put(t, q, 2, 100)
	if err := q.Done(ctx, done.ID); err != nil {
		t.Fatal(err)
	}
	type seen struct {
		mu    sync.Mutex
		items map[string]queue.Item
	}
	subs := []*seen{{items: map[string]queue.Item{}}, {items: map[string]queue.Item{}}}
	for _, s := range subs {
		q.Subscribe(func(it queue.Item) {
			s.mu.Lock()
			s.items[it.Envelope.ID] = it
			s.mu.Unlock()
		})
	}
	b := put(t, q, 3, 100)
	for i, s := range subs {
		ok := func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return len(s.items) == 2 && sameEnvelope(s.items[a.ID].Envelope, a) && sameEnvelope(s.items[b.ID].Envelope, b)
		}
		if !eventually(ok) {
			s.mu.Lock()
			t.Errorf("subscriber %d saw %+v, want %s and %s", i, s.items, a.ID, b.ID)
			s.mu.Unlock()
		}
	}
}

// eventually reports whether ok becomes true within 10 seconds (a
// backend may tell subscribers after Put returns).
func eventually(ok func() bool) bool {
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// testLimits: at a limit Admit and Put say ErrFull and nothing is stored;
// a message done makes room again.
func testLimits(t *testing.T, h Harness) {
	tests := []struct {
		name string
		l    Limits
		puts int
		size int
	}{
		{"max messages", Limits{MaxMessages: 3}, 3, 10},
		{"max bytes", Limits{MaxBytes: 3 * 150}, 3, 150},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := open(t, h, tc.l)
			ctx := context.Background()
			var first queue.Envelope
			for i := range tc.puts {
				if err := q.Admit(int64(tc.size)); err != nil {
					t.Fatalf("Admit under the limit: %v", err)
				}
				env := put(t, q, i, tc.size)
				if i == 0 {
					first = env
				}
			}
			if err := q.Admit(int64(tc.size)); !errors.Is(err, queue.ErrFull) {
				t.Errorf("Admit at the limit: %v, want ErrFull", err)
			}
			env := envelope(q, 99)
			if err := q.Put(ctx, env, body(99, tc.size)); !errors.Is(err, queue.ErrFull) {
				t.Fatalf("Put over the limit: %v, want ErrFull", err)
			}
			if _, err := q.Get(env.ID); !isNotFound(err) {
				t.Errorf("the refused message is queued: %v", err)
			}
			if got := len(q.List()); got != tc.puts {
				t.Fatalf("%d stored, want %d", got, tc.puts)
			}
			if err := q.Done(ctx, first.ID); err != nil {
				t.Fatal(err)
			}
			if err := q.Admit(int64(tc.size)); err != nil {
				t.Errorf("Admit after a message left: %v", err)
			}
			put(t, q, 100, tc.size)
		})
	}
}

// testRestart: after a restart the queue holds the same messages, bodies
// and states, and not those done.
func testRestart(t *testing.T, h Harness) {
	q := open(t, h, Limits{})
	ctx := context.Background()
	a, b, c := put(t, q, 1, 100), put(t, q, 2, 100), put(t, q, 3, 100)
	st := queue.State{ID: b.ID, Attempts: 2, Next: time.Now().Add(time.Hour).Truncate(time.Millisecond),
		LastError: "451 later", Pending: []string{"b2@client.example"}}
	if err := q.SetState(ctx, st); err != nil {
		t.Fatal(err)
	}
	if err := q.Done(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	q = q.restart(t)
	if got := ids(q.List()); !slices.Equal(got, []string{b.ID, c.ID}) {
		t.Fatalf("after a restart List = %v, want [%s %s]", got, b.ID, c.ID)
	}
	checkItem(t, q, b, body(2, 100), st)
	checkItem(t, q, c, body(3, 100), queue.State{})
	if _, err := q.Get(a.ID); !isNotFound(err) {
		t.Errorf("a message done is back after a restart: %v", err)
	}
	var mu sync.Mutex
	var seen []string
	q.Subscribe(func(it queue.Item) { mu.Lock(); seen = append(seen, it.Envelope.ID); mu.Unlock() })
	saw := func() []string { mu.Lock(); defer mu.Unlock(); return slices.Sorted(slices.Values(seen)) }
	want := []string{b.ID, c.ID}
	if !eventually(func() bool { return len(saw()) >= 2 }) || !slices.Equal(saw(), want) {
		t.Errorf("a subscriber after the restart saw %v, want %v", saw(), want)
	}
	put(t, q, 4, 100) // and it takes new mail
}

// testClosed: a closed queue takes no message.
func testClosed(t *testing.T, h Harness) {
	q := open(t, h, Limits{})
	put(t, q, 1, 100)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := q.Put(context.Background(), envelope(q, 2), body(2, 100)); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Put after Close: %v, want ErrClosed", err)
	}
}
