package web

import (
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/mjrelay/mjrelay/relay/authlimit"
)

// maxGuessClients bounds the client addresses the guess limit tracks: past
// it (a distributed attack), logins from addresses not yet tracked are
// refused until some are forgotten.
const maxGuessClients = 50_000

// newGuessLimit is the password guessing limit of both logins (UI and
// webhook): relay/authlimit's, as for SMTP logins (authlimit.Defaults: ten
// failures free, then one more guess every six seconds), per client
// address (clientKey) over all its connections. A check takes its turn
// before bcrypt runs, so that parallel connections cannot overshoot; HTTP
// does not hold a request for its turn (authlimit's Try): past the limit
// the answer is 429 at once, without bcrypt.
func newGuessLimit(now func() time.Time) *authlimit.Limiter {
	o := authlimit.Defaults
	o.MaxAddrs, o.Now = maxGuessClients, now
	return authlimit.New(o)
}

// clientKey is the address a request counts against: its IPv4 address or
// its IPv6 /64 (authlimit.ClientKey).
func clientKey(remoteAddr string) string {
	a, err := netip.ParseAddr(remoteAddr)
	if ap, perr := netip.ParseAddrPort(remoteAddr); perr == nil {
		a, err = ap.Addr(), nil
	}
	if err != nil {
		a = netip.Addr{} // one key for every unreadable address
	}
	return authlimit.ClientKey(a)
}

// failureLogEvery is how often failed logins are summed up in the log.
const failureLogEvery = time.Minute

// failureLog logs failed logins in aggregate: the first one after a quiet
// minute at once, the rest as one summary line per minute at most.
type failureLog struct {
	now   func() time.Time
	log   *slog.Logger
	after func(time.Duration, func()) // time.AfterFunc; tests replace it

	mu     sync.Mutex
	report failureReport
}

// failureReport is what the next log line will say.
type failureReport struct {
	lastLog   time.Time
	scheduled bool
	failed    int
	refused   int
	realms    map[string]int
	addrs     map[string]int
}

func newFailureLog(log *slog.Logger, now func() time.Time) *failureLog {
	return &failureLog{now: now, log: log, after: func(d time.Duration, f func()) { time.AfterFunc(d, f) }}
}

// failed notes a login that did not verify (refused: not checked at all,
// over the limit) for the log.
func (g *failureLog) failed(realm, client string, refused bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := &g.report
	now := g.now()
	if !refused && !r.scheduled && now.Sub(r.lastLog) >= failureLogEvery {
		r.lastLog = now
		g.log.Warn("HTTP login failed (further failures are summed up once a minute)",
			"realm", realm, "client", client)
		return
	}
	if r.realms == nil {
		r.realms, r.addrs = map[string]int{}, map[string]int{}
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
		g.after(max(r.lastLog.Add(failureLogEvery).Sub(now), 0), g.flush)
	}
}

// flush writes the summary of the failures since the last line.
func (g *failureLog) flush() {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := &g.report
	r.scheduled = false
	if r.failed+r.refused == 0 {
		return
	}
	top := ""
	for a, n := range r.addrs {
		if n > r.addrs[top] || n == r.addrs[top] && a < top {
			top = a
		}
	}
	g.log.Warn("HTTP logins failed since the last report", "since", r.lastLog, "wrong_password", r.failed,
		"refused_too_many", r.refused, "realms", r.realms, "clients", len(r.addrs),
		"top_client", top, "top_client_failures", r.addrs[top])
	*r = failureReport{lastLog: g.now()}
}
