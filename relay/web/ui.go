package web

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mjrelay/mjrelay/mailjet/dnscheck"
	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/store"
)

//go:embed templates/*.html
var templatesFS embed.FS

// staticFS holds static/style.css and static/app.js, served as /static/….
//
//go:embed static
var staticFS embed.FS

var pageNames = []string{"dashboard", "messages", "message", "queue", "senders", "error"}

var funcs = template.FuncMap{
	"rfc3339": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"short": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05") + " UTC"
	},
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return time.Since(t).Round(time.Second).String() + " ago"
	},
	"secs":  func(s float64) string { return (time.Duration(s) * time.Second).String() },
	"bytes": humanBytes,
	"ms":    formatMS,
	"join":  strings.Join,
	"stateClass": func(state store.State) string {
		switch state {
		case store.StateSent, store.StateDelivered, store.StateSandboxed:
			return "ok"
		case store.StateQueued, store.StateDeferred:
			return "warn"
		case store.StateUnsub, store.StateDeleted:
			return "muted"
		}
		return "bad"
	},
	"statusClass": func(s dnscheck.Status) string {
		switch s {
		case dnscheck.OK:
			return "ok"
		case dnscheck.Warn:
			return "warn"
		}
		return "bad"
	},
	"pending": store.Pending,
	"first": func(ss []string) string {
		if len(ss) == 0 {
			return ""
		}
		if len(ss) > 1 {
			return fmt.Sprintf("%s (+%d)", ss[0], len(ss)-1)
		}
		return ss[0]
	},
}

func humanBytes(n int64) string {
	switch {
	case n < 1024:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/1024)
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
}

func parsePages() (map[string]*template.Template, error) {
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templatesFS, "templates/layout.html", "templates/feedback.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("web: template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// page is what every page's layout needs.
type page struct {
	Title   string
	Nav     string
	Flash   string
	Sandbox bool
	Dropped uint64
	Odoo    string // the Odoo feedback's standing fault
	Data    any
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, code int, name, title string, data any) {
	p := page{Title: title, Nav: name, Flash: flashText(r.URL.Query().Get("done")), Sandbox: s.o.Sandbox, Data: data}
	p.Dropped = s.d.Store.Health().DroppedEvents
	p.Odoo = s.feedbackProblem(r.Context())
	var buf bytes.Buffer
	if err := s.pages[name].Execute(&buf, p); err != nil {
		s.log.Error("rendering a page failed", "page", name, "err", err)
		http.Error(w, "internal error (see the relay's log)", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, code int, msg string) {
	s.render(w, r, code, "error", http.StatusText(code), msg)
}

// flashText turns the ?done= of a redirect after an action into a message.
func flashText(done string) string {
	return map[string]string{"retried": "Retry requested: the message is due now.",
		"retried-all": "Retry requested for every deferred message.", "deleted": "Message deleted from the queue.",
		"checking": "DNS checks started; reload in a few seconds."}[done]
}

type dashboardData struct {
	Window   string
	Windows  []string
	Stats    *StatsReport
	Cards    []card
	Charts   []lineChart
	Failures []failureBar
	Senders  SendersReport
	Feedback feedbackCard
}

// card is one figure at the top of the dashboard.
type card struct {
	N, Label, Class, Link string
}

func dashboardCards(rep *StatsReport, snd SendersReport, window string) []card {
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
		{n(t["delivered"] + t["sandboxed"]), "accepted by Mailjet", "ok", "/messages?state=sent,delivered,sandboxed&since=" + since},
		{n(t["deferred"]), "deferred attempts", "", "/messages?state=deferred"},
		{n(t["failed"] + t["mj_bounce"] + t["mj_blocked"]), "failed, bounced, blocked", bad(t["failed"] + t["mj_bounce"] + t["mj_blocked"]),
			"/messages?state=failed,bounced,blocked&since=" + since},
		{n(t["refused"]), "refused at SMTP", bad(t["refused"]), "/messages?state=refused&since=" + since},
		{n(queued), "in the queue now", "", "/queue"},
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
		window = "6h"
	}
	rep, err := s.stats(r, window)
	if err != nil {
		s.log.Error("dashboard statistics failed", "err", err)
		s.errorPage(w, r, http.StatusInternalServerError, "The traffic store could not be read; see the relay's log.")
		return
	}
	snd := s.senders.report(false)
	s.render(w, r, http.StatusOK, "dashboard", "Dashboard", dashboardData{Window: window, Windows: names, Stats: rep,
		Cards: dashboardCards(rep, snd, window), Charts: dashboardCharts(rep), Failures: failureBars(rep.Failures, 10), Senders: snd,
		Feedback: s.feedbackCard(r.Context(), rep, window)})
}

type messagesData struct {
	F       url.Values
	States  []store.State
	Page    store.Page
	NextURL string
	Err     string
}

func (s *Server) messagesPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := messagesData{F: q, States: store.States}
	d.Page.Messages = []store.Summary{}
	if f, err := parseFilter(q, s.d.Now()); err != nil {
		d.Err = err.Error()
	} else if d.Page, err = s.d.Store.List(r.Context(), f); err != nil {
		d.Err = err.Error()
		if !errors.Is(err, store.ErrBadFilter) {
			s.log.Error("traffic list failed", "err", err)
			d.Err = "The traffic store could not be read; see the relay's log."
		}
	}
	if d.Page.Next != "" {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("cursor", d.Page.Next)
		d.NextURL = "/messages?" + nq.Encode()
	}
	s.render(w, r, http.StatusOK, "messages", "Traffic", d)
}

type messageData struct {
	M        *store.Message
	CanQueue bool
}

func (s *Server) messagePage(w http.ResponseWriter, r *http.Request) {
	m, err := s.d.Store.Get(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		s.errorPage(w, r, http.StatusNotFound, "No message with this id in the traffic store (it may have been pruned after store.retention).")
		return
	}
	if err != nil {
		s.log.Error("message detail failed", "err", err)
		s.errorPage(w, r, http.StatusInternalServerError, "The traffic store could not be read; see the relay's log.")
		return
	}
	s.render(w, r, http.StatusOK, "message", m.Subject, messageData{M: m, CanQueue: s.d.Queue != nil && store.Pending(m.State)})
}

// back redirects after a UI action to the page it came from.
func back(w http.ResponseWriter, r *http.Request, to, done string) {
	http.Redirect(w, r, to+"?done="+url.QueryEscape(done), http.StatusSeeOther)
}

func (s *Server) uiRetry(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := s.retry(r, id); err != nil {
		s.uiQueueError(w, r, err)
		return
	}
	back(w, r, returnTo(r, "/messages/"+url.PathEscape(id)), "retried")
}

func (s *Server) uiDelete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.remove(r, id); err != nil {
		s.uiQueueError(w, r, err)
		return
	}
	back(w, r, returnTo(r, "/messages/"+url.PathEscape(id)), "deleted")
}

func (s *Server) uiRetryAll(w http.ResponseWriter, r *http.Request) {
	if _, err := s.retry(r, ""); err != nil {
		s.uiQueueError(w, r, err)
		return
	}
	back(w, r, "/queue", "retried-all")
}

// returnTo is the form's "return" field when it names a local page.
func returnTo(r *http.Request, def string) string {
	if v := r.FormValue("return"); v == "/queue" {
		return v
	}
	return def
}

func (s *Server) uiQueueError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, errNoQueue):
		s.errorPage(w, r, http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, queue.ErrNotFound):
		s.errorPage(w, r, http.StatusNotFound, "The message is not in the queue any more (delivered, failed or deleted meanwhile).")
	default:
		s.errorPage(w, r, http.StatusConflict, err.Error())
	}
}

type queueData struct {
	Available bool
	Stats     queue.Stats
	Items     []queue.Item
	Depth     map[string]int
	Shown     int
}

// maxQueueRows bounds the queue page; the API lists everything.
const maxQueueRows = 500

func (s *Server) queuePage(w http.ResponseWriter, r *http.Request) {
	d := queueData{Available: s.d.Queue != nil}
	if s.d.Queue != nil {
		d.Stats, d.Items = s.d.Queue.Stats(), s.d.Queue.List()
		if len(d.Items) > maxQueueRows {
			d.Items = d.Items[:maxQueueRows]
		}
		d.Shown = len(d.Items)
	}
	if s.d.QueueDepth != nil {
		d.Depth = s.d.QueueDepth()
	}
	s.render(w, r, http.StatusOK, "queue", "Queue", d)
}

func (s *Server) sendersPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "senders", "Senders & domains", s.senders.report(false))
}

func (s *Server) uiSendersCheck(w http.ResponseWriter, r *http.Request) {
	s.senders.report(true)
	back(w, r, "/senders", "checking")
}
