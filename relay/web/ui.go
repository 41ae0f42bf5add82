package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/emersion/go-message/charset"

	"github.com/mjrelay/mjrelay/mailjet/account"
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

var pageNames = []string{"dashboard", "messages", "message", "queue", "senders", "funnel", "error", "nodes"}

// timeFormat is the one way times are written; the page's script rewrites
// them in the browser's time zone and keeps this, in UTC, for the hover.
const timeFormat = "2006-01-02 15:04:05"

var funcs = template.FuncMap{
	// tm writes a time as an HTML <time> element.
	"tm": func(t time.Time) template.HTML {
		if t.IsZero() {
			return "-"
		}
		utc := t.UTC().Format(timeFormat) + " UTC"
		return template.HTML(`<time datetime="` + t.UTC().Format(time.RFC3339) + `" title="` + utc + `">` + utc + `</time>`)
	},
	"secs":  func(s float64) string { return (time.Duration(s) * time.Second).String() },
	"bytes": humanBytes,
	"ms":    formatMS,
	"join":  strings.Join,
	// words decodes RFC 2047 encoded words a store kept as sent.
	"words": func(s string) string {
		if strings.Contains(s, "=?") {
			if d, err := (&mime.WordDecoder{CharsetReader: charset.Reader}).DecodeHeader(s); err == nil {
				return d
			}
		}
		return s
	},
	"stateClass": stateClass,
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
	"problem": store.Problem,
	// rest is a reply without the reason label it starts with.
	"rest": func(why, reply string) string {
		if r, ok := strings.CutPrefix(reply, why); ok && why != "" {
			return strings.TrimSpace(r)
		}
		return reply
	},
	"first": func(ss []string) string {
		if len(ss) == 0 {
			return ""
		}
		if len(ss) > 1 {
			return fmt.Sprintf("%s (+%d)", ss[0], len(ss)-1)
		}
		return ss[0]
	},
	"pct": func(r float64) string {
		if r == 0 {
			return "0 %"
		}
		return fmt.Sprintf("%.1f %%", 100*r)
	},
}

// stateClass is a state's colour: sandboxed mail has its own, since it
// never reached Mailjet.
func stateClass(state store.State) string {
	switch state {
	case store.StateSent, store.StateDelivered:
		return "ok"
	case store.StateSandboxed:
		return "sandbox"
	case store.StateQueued, store.StateDeferred:
		return "warn"
	case store.StateUnsub, store.StateDeleted:
		return "muted"
	}
	return "bad"
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
	Cluster bool   // a cluster node: the nav shows Nodes
	Odoo    string // the Odoo feedback's standing fault
	Data    any
}

// render writes a page; with ?fragment=live, only the page's "live"
// template (what the page's script polls for), with an ETag.
func (s *Server) render(w http.ResponseWriter, r *http.Request, code int, name, title string, data any) {
	t := s.pages[name]
	if r.URL.Query().Get("fragment") == "live" && t.Lookup("live") != nil {
		s.renderFragment(w, r, t, data)
		return
	}
	p := page{Title: title, Nav: name, Flash: flashText(r.URL.Query().Get("done")), Sandbox: s.o.Sandbox, Data: data}
	p.Dropped = s.d.Store.Health().DroppedEvents
	p.Cluster = s.d.Nodes != nil
	p.Odoo = s.feedbackProblem(r.Context())
	var buf bytes.Buffer
	if err := t.Execute(&buf, p); err != nil {
		s.log.Error("rendering a page failed", "page", name, "err", err)
		http.Error(w, "internal error (see the relay's log)", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

// renderFragment answers a poll: 304 when nothing changed since the
// browser's copy (its If-None-Match), else the fragment and its ETag.
func (s *Server) renderFragment(w http.ResponseWriter, r *http.Request, t *template.Template, data any) {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "live", data); err != nil {
		s.log.Error("rendering a page fragment failed", "page", t.Name(), "err", err)
		http.Error(w, "internal error (see the relay's log)", http.StatusInternalServerError)
		return
	}
	sum := sha256.Sum256(buf.Bytes())
	etag := `"` + hex.EncodeToString(sum[:12]) + `"`
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes())
}

// pollSeconds is how often pages poll, for their data-every.
func (s *Server) pollSeconds() int { return max(1, int(s.o.Poll/time.Second)) }

// liveURL is the URL a page's script polls: the page with its query and
// ?fragment=live.
func liveURL(path string, q url.Values) string {
	nq := url.Values{}
	for k, v := range q {
		if k != "fragment" && k != "done" {
			nq[k] = v
		}
	}
	nq.Set("fragment", "live")
	return path + "?" + nq.Encode()
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

// sendersData is the senders page: the report, and what the relay does
// with mail (sandbox mode sends nothing).
type sendersData struct {
	SendersReport
	Sandbox bool
	// Fates say what happens to mail from each sender, by email.
	Fates map[string]string
}

func (s *Server) sendersPage(w http.ResponseWriter, r *http.Request) {
	d := sendersData{SendersReport: s.senders.report(false), Sandbox: s.o.Sandbox}
	d.Fates = d.fates()
	s.render(w, r, http.StatusOK, "senders", "Senders & domains", d)
}

func (s *Server) uiSendersCheck(w http.ResponseWriter, r *http.Request) {
	s.senders.report(true)
	back(w, r, "/senders", "checking")
}

// Effect says what the relay does with mail given its sender policy and
// mode, in the words an admin acts on.
func (d sendersData) Effect() []string {
	var out []string
	if d.Sandbox {
		out = append(out, "Sandbox mode: the relay accepts and records mail and sends none of it; nothing reaches Mailjet, whatever the sender.")
	}
	switch {
	case !d.Enabled:
		s := fmt.Sprintf("Senders are not checked against a Mailjet account (policy.sender_check = %q, or no Mailjet keys): "+
			"any From is accepted, within the logins' allowed_from.", d.SenderCheck)
		if !d.Sandbox {
			s += " Mailjet itself holds or refuses mail from senders it has not validated."
		}
		out = append(out, s)
	case d.SenderCheck == "warn":
		s := "sender_check = warn: no mail is refused for its sender. Mail from a sender the Mailjet account does not have " +
			"is accepted, and the refusal enforce would have given is logged as a warning"
		if !d.Sandbox {
			s += "; Mailjet itself may then hold or refuse it"
		}
		out = append(out, s+".")
	default:
		out = append(out, "sender_check = enforce: mail from a sender that is not an active sender (or on an active domain) of the "+
			"Mailjet account is refused at SMTP with 550 5.7.1, the fix in the reply; Odoo shows it on the mail.")
	}
	return out
}

// UnknownEffect says what happens while the account state is unknown.
func (d sendersData) UnknownEffect() string {
	if d.SenderCheck == "warn" {
		return "senders are accepted unchecked until the Mailjet API answers (warn mode: a warning is logged for each)"
	}
	return "every sender gets 451 4.7.0 until the Mailjet API answers (Odoo does not retry: the mail stays in exception)"
}

// fates says, for each sender of the account, what happens to mail from
// it: Mailjet's rule (an Active sender with that address, or an Active
// "*@domain") decides, as the sender check applies it.
func (d sendersData) fates() map[string]string {
	sent := "accepted and sent"
	if d.Sandbox {
		sent = "accepted and recorded, not sent"
	}
	snap := account.NewSnapshot(time.Time{}, "", d.Senders, nil)
	out := map[string]string{}
	for _, sn := range d.Senders {
		ok, by := sn.Status == account.StatusActive, sn.Email
		if !sn.IsWildcard() {
			m := snap.Authorize(sn.Email)
			ok, by = m.Allowed, m.Sender.Email
		}
		switch {
		case ok && sn.IsWildcard():
			out[sn.Email] = sent + " (any address of the domain)"
		case ok && by != sn.Email:
			out[sn.Email] = sent + " (covered by " + by + ")"
		case ok:
			out[sn.Email] = sent
		case d.SenderCheck == "warn":
			out[sn.Email] = sent + ", with a warning"
		default:
			out[sn.Email] = "refused (550 5.7.1)"
		}
	}
	return out
}
