package web

import (
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/mjrelay/mjrelay/relay/store"
)

type dashboardData struct {
	Window  string
	Windows []string
	// Sandbox: nothing reaches Mailjet; no figure claims it did.
	Sandbox   bool
	LiveURL   string
	Every     int // seconds between polls
	Stats     *StatsReport
	Cards     []card
	Charts    []lineChart
	Failures  []failureBar
	Deferrals []failureBar
	Senders   SendersReport
	Feedback  feedbackCard
}

// card is one figure at the top of the dashboard.
type card struct {
	N, Label, Class, Link string
}

// dashboardCards are the dashboard's figures. week is the funnel of the
// last 7 days (nil: not shown).
func dashboardCards(rep *StatsReport, snd SendersReport, window string, sandbox bool, week *store.Funnel) []card {
	t := rep.Totals
	since := url.QueryEscape(window)
	n := func(v int) string { return fmt.Sprint(v) }
	bad := func(v int) string {
		if v > 0 {
			return "bad"
		}
		return ""
	}
	queued := 0
	for _, v := range rep.QueueNow {
		queued += v
	}
	cards := []card{
		{n(rep.ReceivedByClass["transactional"]), "transactional received", "", "/messages?class=transactional&since=" + since},
		{n(rep.ReceivedByClass["bulk"]), "bulk received", "", "/messages?class=bulk&since=" + since},
	}
	if !sandbox {
		cards = append(cards, card{n(t["delivered"]), "accepted by Mailjet", "ok", "/messages?state=sent,delivered&since=" + since})
	}
	if sandbox || t["sandboxed"] > 0 {
		cards = append(cards, card{n(t["sandboxed"]), "sandboxed: recorded, not sent", "sandbox", "/messages?state=sandboxed&since=" + since})
	}
	failed := t["failed"] + t["mj_bounce"] + t["mj_blocked"]
	cards = append(cards,
		card{n(t["deferred"]), "deferred attempts", "", "/messages?state=deferred"},
		card{n(failed), "failed, bounced, blocked", bad(failed), "/messages?state=failed,bounced,blocked&since=" + since},
		card{n(t["refused"]), "refused at SMTP", bad(t["refused"]), "/messages?state=refused&since=" + since},
		card{n(queued), "in the queue now", "", "/queue"})
	if week != nil && !sandbox {
		c := card{"-", "bounce rate, 7 days", "", "/funnel"}
		if tot := week.Total; tot.Accepted > 0 {
			rate := tot.Rate(tot.Bounced)
			c.N = fmt.Sprintf("%.1f %%", 100*rate)
			switch {
			case rate >= 0.08:
				c.Class = "bad"
			case rate >= 0.04:
				c.Class = "warn"
			}
		}
		cards = append(cards, c)
	}
	acct := card{Label: "Mailjet account", Link: "/senders"}
	switch {
	case !snd.Enabled:
		acct.N = "off"
	case !snd.Known:
		acct.N, acct.Class = "unknown", "bad"
	case snd.Stale:
		acct.N, acct.Class = "stale", "warn"
	default:
		acct.N, acct.Class = "ok", "ok"
	}
	if snd.Failures > 0 {
		acct.Label += fmt.Sprintf(" (%d DNS/sender problems)", snd.Failures)
		acct.Class = "warn"
	}
	return append(cards, acct)
}

func (s *Server) dashboard(w http.ResponseWriter, r *http.Request) {
	window := r.URL.Query().Get("window")
	valid := false
	var names []string
	for _, w := range windows {
		names = append(names, w.name)
		valid = valid || w.name == window
	}
	if !valid {
		window = defaultWindow
	}
	rep, err := s.stats(r, window)
	if err != nil {
		s.log.Error("dashboard statistics failed", "err", err)
		s.errorPage(w, r, http.StatusInternalServerError, "The traffic store could not be read; see the relay's log.")
		return
	}
	week := s.weekFunnel(r)
	snd := s.senders.report(false)
	q := url.Values{"window": {window}}
	s.render(w, r, http.StatusOK, "dashboard", "Dashboard", dashboardData{Window: window, Windows: names, Sandbox: s.o.Sandbox,
		LiveURL: liveURL("/", q), Every: s.pollSeconds(), Stats: rep, Cards: dashboardCards(rep, snd, window, s.o.Sandbox, week),
		Charts: dashboardCharts(rep, s.o.Sandbox), Failures: failureBars(rep.Failures, 10, window),
		Deferrals: failureBars(rep.Deferrals, 5, window), Senders: snd, Feedback: s.feedbackCard(r.Context(), rep, window)})
}

// weekFunnel is the last 7 days' funnel for the dashboard's bounce rate,
// read at most once a minute (the dashboard polls every few seconds).
func (s *Server) weekFunnel(r *http.Request) *store.Funnel {
	f, err := s.week.get(s.d.Now(), func(now time.Time) (*store.Funnel, error) {
		return s.d.Store.Funnel(r.Context(), now.Add(-6*24*time.Hour), now, time.UTC)
	})
	if err != nil {
		s.log.Error("dashboard funnel failed", "err", err)
	}
	return f
}

// minuteCache keeps a value computed from the store for a minute.
type minuteCache[T any] struct {
	mu sync.Mutex
	at time.Time
	v  T
	ok bool
}

// get returns the value, computed again by fill when it is a minute old.
func (c *minuteCache[T]) get(now time.Time, fill func(time.Time) (T, error)) (T, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ok && now.Sub(c.at) < time.Minute && !now.Before(c.at) {
		return c.v, nil
	}
	v, err := fill(now)
	if err != nil {
		return v, err
	}
	c.v, c.at, c.ok = v, now, true
	return v, nil
}
