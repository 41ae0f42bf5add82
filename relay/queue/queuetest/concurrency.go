package queuetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mjrelay/mjrelay/relay/queue"
)

// testParallelPuts: many sessions putting at once all get their message
// stored under its own id, listed in order, and kept across a restart.
func testParallelPuts(t *testing.T, h Harness) {
	q := open(t, h, Limits{})
	const sessions, each = 16, 25
	var mu sync.Mutex
	stored := map[string]int{}
	var wg sync.WaitGroup
	for g := range sessions {
		wg.Go(func() {
			for i := range each {
				n := g*each + i
				env := envelope(q, n)
				if err := q.Put(context.Background(), env, body(n, 10<<10)); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				stored[env.ID] = n
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	check := func(q queue.Queue, when string) {
		t.Helper()
		items := q.List()
		if len(items) != sessions*each || len(stored) != sessions*each || q.Stats().Messages != sessions*each {
			t.Fatalf("%s: %d listed, %d acknowledged, Stats %+v; want %d", when, len(items), len(stored), q.Stats(), sessions*each)
		}
		if !sort.StringsAreSorted(ids(items)) {
			t.Errorf("%s: List is not in id order", when)
		}
		for id, n := range stored {
			if b, err := q.Body(id); err != nil || !bytes.Equal(b, body(n, 10<<10)) {
				t.Fatalf("%s: Body(%s) = %d bytes, %v", when, id, len(b), err)
			}
		}
	}
	check(q, "after the puts")
	check(q.restart(t), "after a restart")
}

// testRacingDoneAndSetState: Done and SetState racing on the same
// messages: one Done wins, the others say ErrNotFound, and no state
// brings a message done back, then or after a restart.
func testRacingDoneAndSetState(t *testing.T, h Harness) {
	q := open(t, h, Limits{})
	ctx := context.Background()
	const messages = 40
	var envs []queue.Envelope
	for i := range messages {
		envs = append(envs, put(t, q, i, 100))
	}
	var wins [messages]atomic.Int32
	var wg sync.WaitGroup
	for i, env := range envs {
		for k := range 4 {
			wg.Go(func() {
				var err error
				if k%2 == 0 {
					if err = q.Done(ctx, env.ID); err == nil {
						wins[i].Add(1)
					}
				} else {
					err = q.SetState(ctx, queue.State{ID: env.ID, Attempts: k, LastError: "451 later"})
				}
				if err != nil && !isNotFound(err) {
					t.Errorf("%s: %v", env.ID, err)
				}
			})
		}
	}
	wg.Wait()
	for i := range wins {
		if n := wins[i].Load(); n != 1 {
			t.Errorf("%s: %d Done calls succeeded, want 1", envs[i].ID, n)
		}
	}
	if items, st := q.List(), q.Stats(); len(items) != 0 || st.Messages != 0 {
		t.Errorf("after Done: %d listed, Stats %+v", len(items), st)
	}
	q = q.restart(t)
	if items := q.List(); len(items) != 0 {
		t.Errorf("after a restart %d messages done are back: %v", len(items), ids(items))
	}
}

// testReadersDuringWrites: List, Get, Body and Stats while other sessions
// put and complete messages: a message listed is readable whole until it
// is done, and then ErrNotFound; never anything else.
func testReadersDuringWrites(t *testing.T, h Harness) {
	q := open(t, h, Limits{})
	ctx := context.Background()
	var mu sync.Mutex
	bodies := map[string][]byte{}
	var writers, readers sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 8)
	for g := range 4 {
		writers.Go(func() {
			for i := range 60 {
				n := g*1000 + i
				env := envelope(q, n)
				b := body(n, 500+i*100)
				mu.Lock()
				bodies[env.ID] = b
				mu.Unlock()
				if err := q.Put(ctx, env, b); err != nil {
					errs <- err
					return
				}
				if i%2 == 1 {
					if err := q.Done(ctx, env.ID); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	for range 3 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := readAll(q, bodies, &mu); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	writers.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := len(q.List()); n != 4*30 {
		t.Errorf("%d messages queued at the end, want %d", n, 4*30)
	}
}

// readAll reads every listed message and checks it against bodies.
func readAll(q queue.Queue, bodies map[string][]byte, mu *sync.Mutex) error {
	items := q.List()
	if st := q.Stats(); st.Messages < 0 {
		return fmt.Errorf("Stats = %+v", st)
	}
	for _, it := range items {
		mu.Lock()
		want := bodies[it.Envelope.ID]
		mu.Unlock()
		got, err := q.Body(it.Envelope.ID)
		switch {
		case errors.Is(err, queue.ErrNotFound):
		case err != nil:
			return fmt.Errorf("Body(%s) while writing: %w", it.Envelope.ID, err)
		case !bytes.Equal(got, want):
			return fmt.Errorf("Body(%s) while writing: %d bytes, want %d", it.Envelope.ID, len(got), len(want))
		}
		if g, err := q.Get(it.Envelope.ID); err == nil && g.Envelope.Size != int64(len(want)) {
			return fmt.Errorf("Get(%s) while writing: size %d, want %d", it.Envelope.ID, g.Envelope.Size, len(want))
		} else if err != nil && !errors.Is(err, queue.ErrNotFound) {
			return fmt.Errorf("Get(%s) while writing: %w", it.Envelope.ID, err)
		}
	}
	return nil
}
