package authlimit

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// clock is a fake time source that moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newTest returns a limiter on a fake clock whose waits never fit in
// MaxWait, so that an attempt is either let through or Throttled at once.
func newTest(burst int) (*Limiter, *clock) {
	c := &clock{t: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)}
	return New(Options{Burst: burst, Every: time.Minute, MaxWait: time.Millisecond, Now: c.now}), c
}

// try makes one attempt and reports "turn", "repeat" or "throttled"; a
// turn fails, unless ok.
func try(t *testing.T, l *Limiter, addr, user, pass string, ok bool) string {
	t.Helper()
	turn, err := l.Wait(context.Background(), addr, user+"\x00"+pass)
	var th *Throttled
	switch {
	case errors.As(err, &th):
		return "throttled"
	case err != nil:
		t.Fatal(err)
	case turn.Repeat:
		return "repeat"
	case ok:
		turn.Succeeded(user)
	default:
		turn.Failed(user)
	}
	return "turn"
}

func TestBurstThenOnePerEvery(t *testing.T) {
	l, c := newTest(3)
	for i := range 3 {
		if got := try(t, l, "192.0.2.1", "odoo", fmt.Sprint("guess", i), false); got != "turn" {
			t.Fatalf("guess %d within the burst: %s", i, got)
		}
	}
	if got := try(t, l, "192.0.2.1", "odoo", "guess3", false); got != "throttled" {
		t.Fatalf("guess past the burst: %s", got)
	}
	if got := try(t, l, "192.0.2.2", "odoo", "guess", false); got != "turn" {
		t.Fatalf("another address is throttled too: %s", got)
	}
	c.add(time.Minute)
	if got := try(t, l, "192.0.2.1", "odoo", "guess4", false); got != "turn" {
		t.Fatalf("a minute later: %s", got)
	}
	if got := try(t, l, "192.0.2.1", "odoo", "guess5", false); got != "throttled" {
		t.Fatalf("a second guess in that minute: %s", got)
	}
	var th *Throttled
	_, err := l.Wait(context.Background(), "192.0.2.1", "x")
	if !errors.As(err, &th) || th.RetryAfter != time.Minute {
		t.Fatalf("Throttled %v; want RetryAfter 1m", err)
	}
	c.add(3 * time.Minute)
	if n := l.Failures("192.0.2.1"); n != 0 {
		t.Fatalf("%d failures left after 3 minutes", n)
	}
}

func TestRepeatedGuessCountsOnce(t *testing.T) {
	l, _ := newTest(3)
	tests := []struct {
		user, pass string
		want       string
		failures   int
	}{
		{"odoo", "typo", "turn", 1},
		{"odoo", "typo", "repeat", 1}, // smtplib: LOGIN after PLAIN
		{"odoo", "typo", "repeat", 1}, // Odoo's next batch
		{"other", "typo", "turn", 2},
	}
	for i, tc := range tests {
		if got := try(t, l, "192.0.2.1", tc.user, tc.pass, false); got != tc.want || l.Failures("192.0.2.1") != tc.failures {
			t.Fatalf("attempt %d: %s, %d failures; want %s, %d", i, got, l.Failures("192.0.2.1"), tc.want, tc.failures)
		}
	}
}

func TestLoginClearsThatUsersFailures(t *testing.T) {
	l, _ := newTest(3)
	try(t, l, "192.0.2.1", "odoo", "typo1", false)
	try(t, l, "192.0.2.1", "admin", "guess", false)
	if got := try(t, l, "192.0.2.1", "odoo", "right", true); got != "turn" {
		t.Fatalf("the right password after a typo: %s", got)
	}
	if n := l.Failures("192.0.2.1"); n != 1 {
		t.Fatalf("%d failures after odoo logged in; want admin's 1", n)
	}
	if got := try(t, l, "192.0.2.1", "odoo", "typo1", false); got != "turn" {
		t.Fatalf("a guess that failed before the login is new again: %s", got)
	}
}

// TestAttemptsInProgressCount: attempts in progress take their share of
// the burst, so that connections in parallel get no more guesses between
// them than one connection: past the burst, an attempt waits for those in
// progress; it gets a turn if they succeed (a busy Odoo), and is throttled
// if they fail (a guesser).
func TestAttemptsInProgressCount(t *testing.T) {
	tests := []struct {
		name   string
		fail   bool
		thenOK bool
	}{
		{"they fail", true, false},
		{"they succeed", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := New(Options{Burst: 4, Every: time.Hour, MaxWait: 20 * time.Millisecond})
			var held []*Turn
			for i := range 4 {
				turn, err := l.Wait(context.Background(), "192.0.2.1", fmt.Sprint("guess", i))
				if err != nil {
					t.Fatalf("attempt %d within the burst: %v", i, err)
				}
				held = append(held, turn)
			}
			var th *Throttled
			if _, err := l.Wait(context.Background(), "192.0.2.1", "guess4"); !errors.As(err, &th) {
				t.Fatalf("a fifth attempt while four are in progress: %v, want Throttled", err)
			}
			for _, h := range held {
				if tc.fail {
					h.Failed("odoo")
				} else {
					h.Succeeded("odoo")
				}
			}
			turn, err := l.Wait(context.Background(), "192.0.2.1", "guess4")
			if (err == nil) != tc.thenOK {
				t.Fatalf("the fifth attempt once the four ended: %v", err)
			}
			if turn != nil {
				turn.Succeeded("odoo")
			}
		})
	}
}

// TestParallelLoginsAllGetThrough: a busy Odoo's logins in parallel, more
// than the burst, wait for each other and all get a turn.
func TestParallelLoginsAllGetThrough(t *testing.T) {
	l := New(Options{Burst: 4, Every: time.Hour, MaxWait: 10 * time.Second})
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			turn, err := l.Wait(context.Background(), "192.0.2.1", fmt.Sprint("login", i))
			if err != nil {
				errs <- err
				return
			}
			turn.Succeeded("odoo")
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestWaitEndsWithItsContext(t *testing.T) {
	l := New(Options{Burst: 1, Every: time.Hour, MaxWait: time.Hour})
	held, err := l.Wait(context.Background(), "192.0.2.1", "a")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Failed("odoo")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Wait(ctx, "192.0.2.1", "b"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait with a cancelled context: %v", err)
	}
}

// TestTryNeverWaits: Try refuses at once where Wait would wait for the
// attempts in progress, and says when to come back; an abandoned attempt
// gives its room back without counting as a failure.
func TestTryNeverWaits(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)}
	l := New(Options{Burst: 2, Every: time.Minute, MaxWait: time.Hour, Now: c.now})
	a, err := l.Try("192.0.2.1", "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Try("192.0.2.1", "b")
	if err != nil {
		t.Fatal(err)
	}
	var th *Throttled
	if _, err := l.Try("192.0.2.1", "c"); !errors.As(err, &th) || th.RetryAfter != time.Minute {
		t.Fatalf("a third attempt while two are in progress: %v, want Throttled after 1m", err)
	}
	a.Abandon()
	if n := l.Failures("192.0.2.1"); n != 0 {
		t.Fatalf("%d failures after an abandoned attempt", n)
	}
	cTurn, err := l.Try("192.0.2.1", "c")
	if err != nil {
		t.Fatalf("the room of the abandoned attempt: %v", err)
	}
	b.Failed("odoo")
	cTurn.Failed("odoo")
	if _, err := l.Try("192.0.2.1", "d"); !errors.As(err, &th) || th.RetryAfter != time.Minute {
		t.Fatalf("after two failures: %v, want Throttled after 1m", err)
	}
	if turn, err := l.Try("192.0.2.1", "b"); err != nil || !turn.Repeat {
		t.Fatalf("a guess that failed: %v %+v, want a Repeat", err, turn)
	}
	c.add(time.Minute)
	if _, err := l.Try("192.0.2.1", "d"); err != nil {
		t.Fatalf("a minute later: %v", err)
	}
}

// TestMaxAddrs: past MaxAddrs addresses with recent failures, a new
// address is refused until one is forgotten; known addresses go on.
func TestMaxAddrs(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)}
	l := New(Options{Burst: 2, Every: time.Minute, MaxWait: time.Millisecond, MaxAddrs: 3, Now: c.now})
	for i := range 3 {
		turn, err := l.Try(fmt.Sprint("192.0.2.", i), "x")
		if err != nil {
			t.Fatal(err)
		}
		turn.Failed("odoo")
	}
	var th *Throttled
	if _, err := l.Try("192.0.2.9", "x"); !errors.As(err, &th) {
		t.Fatalf("a fourth address: %v, want Throttled", err)
	}
	if _, err := l.Wait(context.Background(), "192.0.2.9", "x"); !errors.As(err, &th) {
		t.Fatalf("a fourth address, Wait: %v, want Throttled", err)
	}
	if _, err := l.Try("192.0.2.0", "y"); err != nil {
		t.Fatalf("a tracked address: %v", err)
	}
	c.add(time.Minute)
	if _, err := l.Try("192.0.2.9", "x"); err != nil {
		t.Fatalf("once the others' failures are forgotten: %v", err)
	}
}

func TestClientKey(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"192.0.2.1", "192.0.2.1/32"},
		{"::ffff:192.0.2.1", "192.0.2.1/32"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
	}
	for _, tc := range tests {
		if got := ClientKey(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("ClientKey(%s) = %s, want %s", tc.addr, got, tc.want)
		}
	}
}
