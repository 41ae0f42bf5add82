package web

import (
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Password guessing limits, per client address (an IPv6 client by its /64)
// over all its connections and both logins (UI and webhook).
const (
	guessWindow = time.Minute
	// maxGuesses is how many logins that do not verify one address may
	// try per guessWindow. A browser whose password verified once is not
	// counted again (basicAuth remembers it), nor is Mailjet's webhook.
	maxGuesses = 10
	// maxGuessClients bounds the addresses tracked: past it (a distributed
	// attack), logins from addresses not yet tracked wait for room.
	maxGuessClients = 50_000
)

// guessLimit counts password checks that did not verify, per client
// address, in a sliding window: at most maxGuesses per guessWindow. A check
// takes its slot before bcrypt runs (so that parallel connections cannot
// overshoot), a correct password frees every slot its address+login took,
// and a client over the limit gets 429 without bcrypt running.
//
// Failures are logged in aggregate: the first one after a quiet minute at
// once, the rest as one summary line per minute at most.
type guessLimit struct {
	now   func() time.Time
	log   *slog.Logger
	after func(time.Duration, func()) // time.AfterFunc; tests replace it

	mu        sync.Mutex
	clients   map[netip.Prefix][]guess // oldest first
	lastSweep time.Time
	seq       uint64
	report    guessReport
}

// guess is one slot: a password check that did not (yet) verify.
type guess struct {
	id    uint64
	at    time.Time
	login string // realm and user name
}

// guessReport is what the next log line will say.
type guessReport struct {
	lastLog   time.Time
	scheduled bool
	failed    int
	refused   int
	realms    map[string]int
	addrs     map[netip.Prefix]int
}

func newGuessLimit(log *slog.Logger, now func() time.Time) *guessLimit {
	return &guessLimit{now: now, log: log, clients: map[netip.Prefix][]guess{},
		after: func(d time.Duration, f func()) { time.AfterFunc(d, f) }}
}

// clientKey is the address a request counts against: its IPv4 address or
// its IPv6 /64 (what one subscriber usually gets).
func clientKey(remoteAddr string) netip.Prefix {
	a, err := netip.ParseAddr(remoteAddr)
	if ap, perr := netip.ParseAddrPort(remoteAddr); perr == nil {
		a, err = ap.Addr(), nil
	}
	if err != nil {
		return netip.Prefix{}
	}
	a = a.Unmap().WithZone("")
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// reserve takes a slot for one password check by login from client. When
// the client has none left it returns false and how long until one frees.
func (g *guessLimit) reserve(client netip.Prefix, login string) (id uint64, retry time.Duration, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	g.sweep(now)
	list := g.live(client, now)
	switch {
	case len(list) >= maxGuesses:
		return 0, list[0].at.Add(guessWindow).Sub(now), false
	case list == nil && len(g.clients) >= maxGuessClients:
		return 0, guessWindow, false
	}
	g.seq++
	g.clients[client] = append(list, guess{id: g.seq, at: now, login: login})
	return g.seq, 0, true
}

// release gives back a slot whose check did not run (the client left).
func (g *guessLimit) release(client netip.Prefix, id uint64) {
	g.forget(client, func(x guess) bool { return x.id == id })
}

// verified clears the penalty of login at client: its password was right.
func (g *guessLimit) verified(client netip.Prefix, login string) {
	g.forget(client, func(x guess) bool { return x.login == login })
}

func (g *guessLimit) forget(client netip.Prefix, drop func(guess) bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if list := slices.DeleteFunc(g.clients[client], drop); len(list) > 0 {
		g.clients[client] = list
	} else {
		delete(g.clients, client)
	}
}

// live returns client's slots still in the window (nil when none).
func (g *guessLimit) live(client netip.Prefix, now time.Time) []guess {
	list := g.clients[client]
	i := 0
	for i < len(list) && now.Sub(list[i].at) >= guessWindow {
		i++
	}
	if i == len(list) {
		delete(g.clients, client)
		return nil
	}
	return list[i:]
}

// sweep drops expired clients, at most once a second.
func (g *guessLimit) sweep(now time.Time) {
	if len(g.clients) < 1024 || now.Sub(g.lastSweep) < time.Second {
		return
	}
	g.lastSweep = now
	for c := range g.clients {
		g.live(c, now)
	}
}

// failed notes a login that did not verify (refused: not checked at all,
// over the limit) for the log.
func (g *guessLimit) failed(realm string, client netip.Prefix, refused bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := &g.report
	now := g.now()
	if !refused && !r.scheduled && now.Sub(r.lastLog) >= guessWindow {
		r.lastLog = now
		g.log.Warn("HTTP login failed (further failures are summed up once a minute)",
			"realm", realm, "client", client.String())
		return
	}
	if r.realms == nil {
		r.realms, r.addrs = map[string]int{}, map[netip.Prefix]int{}
	}
	if refused {
		r.refused++
	} else {
		r.failed++
	}
	r.realms[realm]++
	if _, ok := r.addrs[client]; ok || len(r.addrs) < 1000 {
		r.addrs[client]++
	}
	if !r.scheduled {
		r.scheduled = true
		g.after(max(r.lastLog.Add(guessWindow).Sub(now), 0), g.flush)
	}
}

// flush writes the summary of the failures since the last line.
func (g *guessLimit) flush() {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := &g.report
	r.scheduled = false
	if r.failed+r.refused == 0 {
		return
	}
	var top netip.Prefix
	for a, n := range r.addrs {
		if n > r.addrs[top] || n == r.addrs[top] && a.String() < top.String() {
			top = a
		}
	}
	g.log.Warn("HTTP logins failed since the last report", "since", r.lastLog, "wrong_password", r.failed,
		"refused_too_many", r.refused, "realms", r.realms, "clients", len(r.addrs),
		"top_client", top.String(), "top_client_failures", r.addrs[top])
	*r = guessReport{lastLog: g.now()}
}
