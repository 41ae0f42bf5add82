// Package authlimit bounds password guessing per client address, across
// all of that address's connections: an address may have Burst failed
// logins (and logins in progress) at once, then one more per Every, so
// that fifty parallel connections guess no faster than one. A failure is
// forgotten after Every (Burst*Every for a full burst); a user who logs in
// from an address clears the failures that address had made for that
// user; a guess that already failed from an address (smtplib's LOGIN retry
// after PLAIN, Odoo retrying a wrong password, Mailjet resending a webhook
// with an old password) is not a new guess.
//
// The SMTP server (Wait: an attempt may wait its turn) and the web UI's
// and webhook's basic auth (Try: HTTP refuses at once, 429) use it the
// same way:
//
//	t, err := lim.Wait(ctx, addr, digestOfUserAndPassword) // or lim.Try(addr, digest)
//	if err != nil { /* *Throttled: refuse for now, say when to retry */ }
//	if t.Repeat { /* known bad: refuse without checking */ }
//	if ok := check(user, password); ok { t.Succeeded(user) } else { t.Failed(user) }
//
// and t.Abandon() when the check did not run (the client left). The
// address is what the caller counts a client by; ClientKey gives an IPv6
// client's /64.
package authlimit

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// Options are a Limiter's settings.
type Options struct {
	// Burst is how many failures (and attempts in progress) an address may
	// have at once before its next attempt waits.
	Burst int
	// Every is how often a further attempt is allowed after that.
	Every time.Duration
	// MaxWait is how long an attempt may wait for its turn; an attempt
	// whose turn is further away is refused at once (Throttled).
	MaxWait time.Duration
	// MaxAddrs bounds the addresses tracked: when that many have recent
	// failures or attempts in progress (a distributed attack), an attempt
	// from an address not tracked yet is refused (Throttled) until some
	// are forgotten. 0: no bound.
	MaxAddrs int
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Defaults: ten failures free, then ten guesses a minute, and no attempt
// held longer than 20 s (Odoo's SMTP timeout is 60 s).
var Defaults = Options{Burst: 10, Every: 6 * time.Second, MaxWait: 20 * time.Second}

// Throttled is Wait's error when an address's turn is too far away.
type Throttled struct {
	RetryAfter time.Duration
}

func (e *Throttled) Error() string {
	return fmt.Sprintf("too many failed logins from this address; try again in %s", e.RetryAfter.Round(time.Second))
}

// Limiter tracks recent failed logins by address. The zero value is not
// usable; call New.
type Limiter struct {
	o   Options
	now func() time.Time

	mu        sync.Mutex
	addrs     map[string]*entry
	lastSweep time.Time
}

type entry struct {
	// debt is when the address's failures are all forgotten: each failure
	// pushes it Every further from max(debt, now).
	debt    time.Time
	pending int            // attempts between Wait and Failed/Succeeded
	users   map[string]int // failures by user name, for Succeeded
	known   []guess        // failed guesses, so that a repeat is not counted
	changed chan struct{}  // closed (and replaced) when an attempt ends
}

type guess struct{ digest, user string }

const (
	maxKnown   = 8     // failed guesses remembered per address
	maxUsers   = 64    // user names tracked per address
	maxUserLen = 128   // bytes of a user name kept
	sweepAt    = 10000 // addresses before idle ones are dropped (once a second at most)
)

// New returns a limiter; zero fields of o take Defaults' values.
func New(o Options) *Limiter {
	if o.Burst <= 0 {
		o.Burst = Defaults.Burst
	}
	if o.Every <= 0 {
		o.Every = Defaults.Every
	}
	if o.MaxWait <= 0 {
		o.MaxWait = Defaults.MaxWait
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Limiter{o: o, now: o.Now, addrs: map[string]*entry{}}
}

// Turn is one login attempt, from Wait until Failed or Succeeded.
type Turn struct {
	l            *Limiter
	addr, digest string
	done         bool
	// Repeat: this guess already failed from this address. Refuse it
	// without checking; it does not count again.
	Repeat bool
}

// Wait returns when addr may try the guess digest (a digest of the user
// name and password, never the password itself): at once while the address
// is within its burst, else in its turn. It fails with *Throttled when the
// turn is more than MaxWait away, or with ctx's error.
func (l *Limiter) Wait(ctx context.Context, addr, digest string) (*Turn, error) {
	deadline := l.now().Add(l.o.MaxWait)
	for {
		t, wait, changed := l.take(addr, digest)
		if t != nil {
			return t, nil
		}
		// Time alone frees the room in wait; attempts in progress (changed
		// is then not nil) may free it sooner.
		now := l.now()
		if now.Add(wait).After(deadline) && changed == nil || now.After(deadline) {
			return nil, &Throttled{RetryAfter: wait}
		}
		timer := time.NewTimer(min(wait, deadline.Sub(now)))
		select {
		case <-changed:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		}
		timer.Stop()
	}
}

// Try is Wait without waiting: when addr has no room for the attempt now,
// it fails at once with *Throttled (for HTTP, which answers 429 rather than
// hold the request).
func (l *Limiter) Try(addr, digest string) (*Turn, error) {
	t, wait, _ := l.take(addr, digest)
	if t == nil {
		return nil, &Throttled{RetryAfter: wait}
	}
	return t, nil
}

// take gives addr a turn for digest if it has room now; else it returns how
// long until time alone frees the room, and, when attempts of addr are in
// progress, a channel closed when one ends.
func (l *Limiter) take(addr, digest string) (t *Turn, wait time.Duration, changed chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entry(addr)
	if e == nil {
		return nil, l.o.Every, nil // no room for another address
	}
	for _, g := range e.known {
		if g.digest == digest {
			return &Turn{l: l, addr: addr, digest: digest, Repeat: true, done: true}, 0, nil
		}
	}
	// Free room for this attempt: the burst, less recent failures and
	// attempts in progress.
	owed := max(e.debt.Sub(l.now()), 0) + time.Duration(e.pending+1)*l.o.Every
	room := time.Duration(l.o.Burst)*l.o.Every - owed
	if room >= 0 {
		e.pending++
		return &Turn{l: l, addr: addr, digest: digest}, 0, nil
	}
	if e.pending > 0 {
		changed = e.changed
	}
	return nil, -room, changed
}

// Failed records that the attempt failed for user.
func (t *Turn) Failed(user string) {
	user = clip(user)
	t.end(func(e *entry, now time.Time) {
		e.debt = maxTime(e.debt, now).Add(t.l.o.Every)
		if _, ok := e.users[user]; ok || len(e.users) < maxUsers {
			e.users[user]++
		}
		if len(e.known) == maxKnown {
			e.known = e.known[1:]
		}
		e.known = append(e.known, guess{t.digest, user})
	})
}

// Succeeded records that user logged in: the address's failures for that
// user are forgotten.
func (t *Turn) Succeeded(user string) {
	user = clip(user)
	t.end(func(e *entry, now time.Time) {
		e.debt = maxTime(e.debt.Add(-time.Duration(e.users[user])*t.l.o.Every), now)
		delete(e.users, user)
		kept := e.known[:0]
		for _, g := range e.known {
			if g.user != user {
				kept = append(kept, g)
			}
		}
		e.known = kept
	})
}

// Abandon ends an attempt whose check did not run (the client left): it
// counts neither way.
func (t *Turn) Abandon() {
	t.end(func(*entry, time.Time) {})
}

func (t *Turn) end(update func(e *entry, now time.Time)) {
	if t.done {
		return
	}
	t.done = true
	l := t.l
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.addrs[t.addr] // kept while the attempt was pending
	e.pending--
	update(e, l.now())
	close(e.changed)
	e.changed = make(chan struct{})
}

// Failures is how many recent failures addr has left to be forgotten
// (failures in progress of being forgotten count as whole).
func (l *Limiter) Failures(addr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.addrs[addr]
	if e == nil {
		return 0
	}
	owed := e.debt.Sub(l.now())
	if owed <= 0 {
		return 0
	}
	return int((owed + l.o.Every - 1) / l.o.Every)
}

// entry returns addr's state, fresh if its failures are all forgotten, or
// nil when addr is not tracked and MaxAddrs are. Called with l.mu held.
func (l *Limiter) entry(addr string) *entry {
	now := l.now()
	e := l.addrs[addr]
	if e != nil && idle(e, now) {
		e.users, e.known = map[string]int{}, nil
	}
	if e == nil {
		if len(l.addrs) >= sweepAt || l.o.MaxAddrs > 0 && len(l.addrs) >= l.o.MaxAddrs {
			l.sweep(now)
		}
		if l.o.MaxAddrs > 0 && len(l.addrs) >= l.o.MaxAddrs {
			return nil
		}
		e = &entry{users: map[string]int{}, changed: make(chan struct{})}
		l.addrs[addr] = e
	}
	return e
}

// sweep drops the idle addresses, once a second at most.
func (l *Limiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < time.Second {
		return
	}
	l.lastSweep = now
	for a, x := range l.addrs {
		if idle(x, now) {
			delete(l.addrs, a)
		}
	}
}

// idle: no attempt in progress and every failure forgotten.
func idle(e *entry, now time.Time) bool { return e.pending == 0 && !e.debt.After(now) }

// ClientKey is the address a login from a counts against: an IPv4 address,
// or the /64 of an IPv6 address (what one subscriber usually gets), as a
// prefix ("192.0.2.1/32", "2001:db8::/64"). An IPv4-mapped IPv6 address
// counts as IPv4.
func ClientKey(a netip.Addr) string {
	a = a.Unmap().WithZone("")
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p.String()
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func clip(user string) string {
	if len(user) > maxUserLen {
		return user[:maxUserLen]
	}
	return user
}
