package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/authlimit"
)

// The guess limit of both logins is authlimit's default: maxGuesses
// failures free, then one more per guessEvery.
var (
	maxGuesses = authlimit.Defaults.Burst
	guessEvery = authlimit.Defaults.Every
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// throttleEnv is a server with UI and webhook logins, a settable clock, a
// log and a count of the bcrypt comparisons run.
type throttleEnv struct {
	*env
	clk      *clock
	log      *bytes.Buffer // written by one slog handler, which serializes
	bcrypts  atomic.Int64
	guesses  atomic.Int64
	flush    func() // the summary the failure log scheduled, if any
	flushIn  time.Duration
	mu       sync.Mutex
	flushSet int
}

func newThrottleEnv(t *testing.T) *throttleEnv {
	te := &throttleEnv{clk: &clock{t: t0}, log: &bytes.Buffer{}}
	logger := slog.New(slog.NewJSONHandler(te.log, nil))
	te.env = newEnv(t, withUsers(t), withWebhook(t), withDeps(func(d *Deps) { d.Now, d.Logger = te.clk.Now, logger }))
	for _, a := range []*basicAuth{te.srv.ui, te.srv.hook} {
		real := a.compare
		a.compare = func(h, p []byte) error { te.bcrypts.Add(1); return real(h, p) }
	}
	te.srv.ui.fails.after = func(d time.Duration, f func()) {
		te.mu.Lock()
		te.flush, te.flushIn = f, d
		te.flushSet++
		te.mu.Unlock()
	}
	return te
}

// freshGuess, as a password, is a wrong password not tried before: the
// limiter counts a guess that already failed from an address only once.
const freshGuess = "<fresh guess>"

// login sends one request with credentials from addr: to the UI, or to
// the webhook when path is /webhooks/mailjet.
func (te *throttleEnv) login(t *testing.T, addr, path, user, pw string) *http.Response {
	t.Helper()
	if pw == freshGuess {
		pw = fmt.Sprint("guess", te.guesses.Add(1))
	}
	method := "GET"
	if path == "/webhooks/mailjet" {
		method = "POST"
	}
	w := te.do(t, method, path, strings.NewReader("[]"), from(addr), host("relay.example.com"), auth(user, pw))
	return w.Result()
}

const (
	ui   = "/"
	hook = "/webhooks/mailjet"
	addA = "198.51.100.7:40000"
	addB = "198.51.100.8:40000"
)

// TestLoginThrottle: wrong passwords are limited per client address across
// both logins (maxGuesses, then one per guessEvery); past the limit the
// answer is 429 with a Retry-After that says when the next guess is let
// through, and bcrypt does not run; a guess that already failed is refused
// again without bcrypt and without counting; a correct login clears its own
// address+user penalty.
func TestLoginThrottle(t *testing.T) {
	type step struct {
		n         int // repetitions (0 = 1)
		wait      time.Duration
		addr      string
		path      string
		user, pw  string
		want      int
		wantRetry string // Retry-After of a 429
		noBcrypt  bool   // answered without bcrypt
	}
	wrongUI := func(n int, addr string, want int) step {
		return step{n: n, addr: addr, path: ui, user: "admin", pw: freshGuess, want: want}
	}
	rightUI := func(addr string, want int) step {
		return step{addr: addr, path: ui, user: "admin", pw: uiPassword, want: want}
	}
	wrongHook := func(n int, addr string, want int) step {
		return step{n: n, addr: addr, path: hook, user: "mailjet", pw: freshGuess, want: want}
	}
	every := strconv.Itoa(int(guessEvery.Seconds()))
	tests := []struct {
		name  string
		steps []step
	}{
		{"limit per address, then one guess per interval", []step{
			wrongUI(maxGuesses, addA, 401),
			{addr: addA, path: ui, user: "admin", pw: freshGuess, want: 429, wantRetry: every},
			rightUI(addA, 429), // not checked: no bcrypt for a throttled client
			wrongUI(1, addB, 401),
			{wait: guessEvery / 2, addr: addA, path: ui, user: "admin", pw: freshGuess, want: 429,
				wantRetry: strconv.Itoa(int(guessEvery.Seconds() / 2))},
			{wait: guessEvery / 2, addr: addA, path: ui, user: "admin", pw: freshGuess, want: 401}, // its turn
			{addr: addA, path: ui, user: "admin", pw: freshGuess, want: 429, wantRetry: every},
			{wait: time.Duration(maxGuesses+1) * guessEvery, addr: addA, path: ui, user: "admin", pw: uiPassword, want: 200},
		}},
		{"a correct login clears its own penalty", []step{
			wrongUI(maxGuesses-1, addA, 401),
			rightUI(addA, 200),
			wrongUI(maxGuesses, addA, 401),
			wrongUI(1, addA, 429),
		}},
		{"and only its own", []step{
			wrongHook(5, addA, 401),
			wrongUI(maxGuesses-6, addA, 401),
			rightUI(addA, 200), // the last guess: clears the UI's, not the webhook's 5
			wrongUI(5, addA, 401),
			wrongUI(1, addA, 429),
			{addr: addA, path: hook, user: "mailjet", pw: hookPassword, want: 429},
			{addr: addB, path: hook, user: "mailjet", pw: hookPassword, want: 200},
		}},
		{"a remembered login passes while its address is throttled", []step{
			rightUI(addA, 200),
			wrongUI(maxGuesses, addA, 401),
			wrongUI(1, addA, 429),
			{addr: addA, path: ui, user: "admin", pw: uiPassword, want: 200, noBcrypt: true},
		}},
		{"a repeated wrong password counts once", []step{
			{addr: addA, path: ui, user: "admin", pw: "typo", want: 401},
			{n: 3 * maxGuesses, addr: addA, path: ui, user: "admin", pw: "typo", want: 401, noBcrypt: true},
			{addr: addA, path: hook, user: "mailjet", pw: "typo", want: 401}, // another login's guess
			{addr: addA, path: hook, user: "mailjet", pw: "typo", want: 401, noBcrypt: true},
			{addr: addA, path: ui, user: "admin", pw: "typo", want: 401, noBcrypt: true},
			wrongUI(maxGuesses-2, addA, 401),
			wrongUI(1, addA, 429),
		}},
		{"webhook", []step{
			wrongHook(maxGuesses, addB, 401),
			{addr: addB, path: hook, user: "mailjet", pw: freshGuess, want: 429, wantRetry: every},
			{addr: addB, path: ui, user: "admin", pw: freshGuess, want: 429},
		}},
		{"IPv6 by /64, IPv4-mapped as IPv4", []step{
			wrongUI(maxGuesses, "[2001:db8::1]:40000", 401),
			wrongUI(1, "[2001:db8::ffff:1]:40000", 429),
			wrongUI(1, "[2001:db8:0:1::1]:40000", 401),
			wrongUI(maxGuesses, "[::ffff:198.51.100.9]:40000", 401),
			wrongUI(1, "198.51.100.9:50000", 429),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			te := newThrottleEnv(t)
			for i, s := range tc.steps {
				te.clk.add(s.wait)
				for range max(s.n, 1) {
					before := te.bcrypts.Load()
					res := te.login(t, s.addr, s.path, s.user, s.pw)
					if res.StatusCode != s.want {
						t.Fatalf("step %d (%s %s as %s): %d, want %d", i, s.addr, s.path, s.user, res.StatusCode, s.want)
					}
					ran := te.bcrypts.Load() - before
					switch {
					case (res.StatusCode == 429 || s.noBcrypt) && ran != 0:
						t.Errorf("step %d: bcrypt ran (%d answer)", i, res.StatusCode)
					case res.StatusCode != 429 && !s.noBcrypt && ran != 1:
						t.Errorf("step %d: bcrypt ran %d times, want once", i, ran)
					case res.StatusCode == 429 && res.Header.Get("Retry-After") == "":
						t.Errorf("step %d: 429 without Retry-After", i)
					case s.wantRetry != "" && res.Header.Get("Retry-After") != s.wantRetry:
						t.Errorf("step %d: Retry-After %q, want %q", i, res.Header.Get("Retry-After"), s.wantRetry)
					}
				}
			}
		})
	}
}

// TestLoginThrottleParallel: parallel connections from one address share
// its guesses; the slot is taken before bcrypt, so they cannot overshoot.
func TestLoginThrottleParallel(t *testing.T) {
	te := newThrottleEnv(t)
	const n = 50
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- te.login(t, "198.51.100.7:"+strconv.Itoa(40000+i), ui, "admin", freshGuess).StatusCode
		}()
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	if count[401] != maxGuesses || count[429] != n-maxGuesses || te.bcrypts.Load() != int64(maxGuesses) {
		t.Fatalf("%v with %d bcrypt runs; want %d × 401 and %d × 429", count, te.bcrypts.Load(), maxGuesses, n-maxGuesses)
	}
}

// TestLoginFailuresLoggedInAggregate: one line for the first failure, then
// one summary per minute, not one line per request.
func TestLoginFailuresLoggedInAggregate(t *testing.T) {
	te := newThrottleEnv(t)
	for a := range 5 {
		for range 2 * maxGuesses {
			te.login(t, "198.51.100."+strconv.Itoa(a+1)+":40000", ui, "admin", freshGuess)
		}
	}
	lines := func() []map[string]any {
		var out []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(te.log.String()), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && strings.Contains(m["msg"].(string), "HTTP login") {
				out = append(out, m)
			}
		}
		return out
	}
	if got := lines(); len(got) != 1 || got[0]["realm"] != "ui" || got[0]["client"] != "198.51.100.1/32" {
		t.Fatalf("%d lines for 100 failures before the summary: %v", len(got), got)
	}
	if te.flush == nil || te.flushSet != 1 || te.flushIn != failureLogEvery {
		t.Fatalf("summary scheduled %d times, in %s", te.flushSet, te.flushIn)
	}
	te.clk.add(failureLogEvery)
	te.flush()
	got := lines()
	if len(got) != 2 {
		t.Fatalf("%d lines after the summary", len(got))
	}
	sum := got[1]
	if sum["wrong_password"] != float64(5*maxGuesses-1) || sum["refused_too_many"] != float64(5*maxGuesses) ||
		sum["clients"] != float64(5) || sum["top_client"] != "198.51.100.2/32" || sum["top_client_failures"] != float64(2*maxGuesses) {
		t.Errorf("summary %v", sum)
	}
	// More failures within the minute after it: summed up, not logged at once.
	te.clk.add(10 * time.Second)
	te.login(t, addB, ui, "admin", freshGuess)
	if n := len(lines()); n != 2 || te.flushSet != 2 || te.flushIn != 50*time.Second {
		t.Errorf("%d lines; summary scheduled %d times, in %s", n, te.flushSet, te.flushIn)
	}
}
