// Package authlimit bounds password guessing per client address, across
// all of that address's connections: an address may have Burst failed
// logins (and logins in progress) at once, then one more per Every, so
// that fifty parallel connections guess no faster than one. A failure is
// forgotten after Every (Burst*Every for a full burst); a user who logs in
// from an address clears the failures that address had made for that
// user; a guess that already failed from an address (smtplib's LOGIN retry
// after PLAIN, Odoo retrying a wrong password) is not a new guess.
//
// The SMTP server and the web UI's basic auth use it the same way:
//
//	t, err := lim.Wait(ctx, ip, digestOfUserAndPassword)
//	if err != nil { /* *Throttled: refuse for now, say when to retry */ }
//	if t.Repeat { /* known bad: refuse without checking */ }
//	if ok := check(user, password); ok { t.Succeeded(user) } else { t.Failed(user) }
package authlimit

import (
	"context"
	"fmt"
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

	mu    sync.Mutex
	addrs map[string]*entry
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
	maxAddrs   = 10000 // addresses before idle ones are dropped
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
	return &Limiter{o: o, now: time.Now, addrs: map[string]*entry{}}
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
		l.mu.Lock()
		e := l.entry(addr)
		for _, g := range e.known {
			if g.digest == digest {
				l.mu.Unlock()
				return &Turn{l: l, addr: addr, digest: digest, Repeat: true, done: true}, nil
			}
		}
		now := l.now()
		// Free room for this attempt: the burst, less recent failures
		// and attempts in progress.
		owed := max(e.debt.Sub(now), 0) + time.Duration(e.pending+1)*l.o.Every
		room := time.Duration(l.o.Burst)*l.o.Every - owed
		if room >= 0 {
			e.pending++
			l.mu.Unlock()
			return &Turn{l: l, addr: addr, digest: digest}, nil
		}
		// Time alone frees -room; attempts in progress may free it sooner.
		wait := -room
		if now.Add(wait).After(deadline) && e.pending == 0 || now.After(deadline) {
			l.mu.Unlock()
			return nil, &Throttled{RetryAfter: wait}
		}
		changed := e.changed
		l.mu.Unlock()
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

func (t *Turn) end(update func(e *entry, now time.Time)) {
	if t.done {
		return
	}
	t.done = true
	l := t.l
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.entry(t.addr)
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

// entry returns addr's state, fresh if its failures are all forgotten.
// Called with l.mu held.
func (l *Limiter) entry(addr string) *entry {
	now := l.now()
	e := l.addrs[addr]
	if e != nil && e.pending == 0 && !e.debt.After(now) {
		e.users, e.known = map[string]int{}, nil
	}
	if e == nil {
		if len(l.addrs) >= maxAddrs {
			for a, x := range l.addrs {
				if x.pending == 0 && !x.debt.After(now) {
					delete(l.addrs, a)
				}
			}
		}
		e = &entry{users: map[string]int{}, changed: make(chan struct{})}
		l.addrs[addr] = e
	}
	return e
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
