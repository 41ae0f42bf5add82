// Package web is mjrelay's HTTP side: the traffic inspection UI (server-side
// html/template pages and SVG charts embedded in the binary, no CDN), its
// JSON API, Mailjet's event webhook, the Prometheus metrics (relay/metrics,
// which it serves) and the health checks, all on one handler. It takes
// Options of plain values; the wiring (relay) builds them from the
// configuration.
//
// The pages' only script is /static/app.js (the CSP allows no other): it
// writes times in the browser's zone and polls the dashboard and the
// traffic list for changes (?fragment=live, with an ETag). A message's HTML
// body is shown in a sandboxed frame (no allow-scripts, no
// allow-same-origin) from /messages/{id}/body, under a policy of its own
// (bodyCSP: no script ever, images only from the message itself unless
// the admin asks for remote ones); its parts and attachments download with
// Content-Disposition: attachment (relay/store/mimeview reads them).
//
// Access: without [[http.users]] everything but the webhook answers only
// requests from a loopback address with a loopback Host header (config
// validation requires users whenever http.listen is not loopback; the Host
// check defeats DNS rebinding). With users, the UI, the API and /metrics
// require HTTP basic auth; wrong passwords are limited per client address
// (relay/authlimit, as for SMTP; 429 with Retry-After past the limit, see
// newGuessLimit). /healthz and /readyz are open. /webhooks/mailjet
// has its own basic-auth login ([webhooks]) and answers 404 while it is not
// configured. State-changing requests are refused when a browser says they
// come from another site (net/http.CrossOriginProtection).
package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/mjrelay/mjrelay/mailjet/account"
	"github.com/mjrelay/mjrelay/mailjet/dnscheck"
	"github.com/mjrelay/mjrelay/relay/control"
	"github.com/mjrelay/mjrelay/relay/store"
)

// Options are what the server needs of the configuration.
type Options struct {
	// Users may use the UI, the API and /metrics (HTTP basic auth); with
	// none, only loopback requests to a loopback host name are answered.
	Users []User
	// Webhook is the login of Mailjet's event webhook; zero: the webhook
	// is not configured (404).
	Webhook User
	// Sandbox: the relay records mail and sends nothing (every page says so).
	Sandbox bool
	// SenderCheck ("enforce", "warn" or "off"), RequireDKIM and RequireSPF
	// are the sender policy the senders page reports against.
	SenderCheck             string
	RequireDKIM, RequireSPF bool
	// Poll is how often the dashboard and the traffic list ask for
	// changes (default 5 s).
	Poll time.Duration
}

// User is a login: a name and the bcrypt hash of its password.
type User struct{ Username, PasswordHash string }

// Metrics are the relay's Prometheus metrics (relay/metrics): served on
// /metrics, and counting the webhook's requests and events.
type Metrics interface {
	http.Handler
	WebhookRequest(code int)
	// WebhookEvent counts an event by name ("unknown" for a name Mailjet
	// does not document) and result.
	WebhookEvent(event, result string)
}

// Deps are what the server shows and acts on.
type Deps struct {
	Store store.Store
	// Queue is the live queue (retry, delete, list); nil hides the actions.
	Queue control.Queue
	// Account is the Mailjet account cache; nil when the sender check is off.
	Account interface{ State() account.State }
	// QueueDepth returns the messages per lane ("transactional", "bulk"):
	// ready + deferred + in flight. Optional.
	QueueDepth func() map[string]int
	// Ready returns nil when the relay is ready (listening, queue writable,
	// account state known). Optional.
	Ready   func() error
	Metrics Metrics
	Logger  *slog.Logger
	// Resolver is used for the senders page's DNS checks (nil: the system
	// resolver).
	Resolver dnscheck.Resolver
	// Now is the clock (tests). Default time.Now.
	Now func() time.Time
	// Nodes lists a cluster's nodes (nodes.go); nil when the relay is
	// not a cluster node (no nodes page).
	Nodes func(ctx context.Context) ([]Node, error)
	// Degraded says why a cluster node holds mail locally ("" when it
	// does not); /readyz still answers 200 with it.
	Degraded func() string
	// Feedback is the Odoo feedback; nil when it is off.
	Feedback Feedback
}

// Server serves the UI, the API, the webhook, metrics and health.
type Server struct {
	o       Options
	d       Deps
	log     *slog.Logger
	ui      *basicAuth // nil: loopback only
	hook    *basicAuth // nil: webhook not configured
	senders *senders
	pages   map[string]*template.Template
	handler http.Handler
	// week and reasonList cache the dashboard's 7-day funnel and the
	// traffic list's reasons to filter by.
	week       minuteCache[*store.Funnel]
	reasonList minuteCache[[]string]
}

// New builds the server.
func New(o Options, d Deps) (*Server, error) {
	if d.Store == nil {
		return nil, errors.New("web: no traffic store")
	}
	if d.Metrics == nil {
		return nil, errors.New("web: no metrics")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if o.Poll <= 0 {
		o.Poll = 5 * time.Second
	}
	if d.Resolver == nil {
		d.Resolver = dnscheck.NewResolver("")
	}
	if c, ok := d.Account.(*account.Cache); ok && c == nil {
		d.Account = nil // a nil *Cache in the interface: the sender check is off
	}
	s := &Server{o: o, d: d, log: d.Logger.With("component", "web")}
	// One guess limit and one failure log for both logins.
	guesses, fails := newGuessLimit(d.Now), newFailureLog(s.log, d.Now)
	if len(o.Users) > 0 {
		users := map[string]string{}
		for _, u := range o.Users {
			users[u.Username] = u.PasswordHash
		}
		s.ui = newBasicAuth("ui", users, guesses, fails)
	}
	if wh := o.Webhook; wh.Username != "" {
		s.hook = newBasicAuth("webhook", map[string]string{wh.Username: wh.PasswordHash}, guesses, fails)
	}
	s.senders = newSenders(o, d)
	var err error
	if s.pages, err = parsePages(); err != nil {
		return nil, err
	}
	s.handler = s.routes()
	return s, nil
}

// Handler is everything on one mux.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	open := http.NewServeMux()
	open.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	open.HandleFunc("GET /readyz", s.readyz)
	open.HandleFunc("/webhooks/mailjet", s.webhook)

	app := http.NewServeMux()
	app.Handle("GET /metrics", s.d.Metrics)
	app.Handle("GET /static/", http.FileServerFS(staticFS))
	// UI
	app.HandleFunc("GET /{$}", s.dashboard)
	app.HandleFunc("GET /messages", s.messagesPage)
	app.HandleFunc("GET /messages/{id}", s.messagePage)
	app.HandleFunc("GET /messages/{id}/body", s.messageBody)
	app.HandleFunc("POST /messages/{id}/retry", s.uiRetry)
	app.HandleFunc("POST /messages/{id}/delete", s.uiDelete)
	app.HandleFunc("GET /queue", s.queuePage)
	app.HandleFunc("POST /queue/retry", s.uiRetryAll)
	app.HandleFunc("GET /senders", s.sendersPage)
	app.HandleFunc("POST /senders/check", s.uiSendersCheck)
	app.HandleFunc("GET /funnel", s.funnelPage)
	// API
	app.HandleFunc("GET /api/messages", s.apiList)
	app.HandleFunc("GET /api/messages/{id}", s.apiGet)
	app.HandleFunc("GET /api/messages/{id}/raw", s.apiRaw)
	app.HandleFunc("GET /api/messages/{id}/parts/{part}", s.apiPart)
	app.HandleFunc("GET /api/messages/{id}/attachments/{part}", s.apiAttachment)
	app.HandleFunc("GET /api/funnel", s.apiFunnel)
	app.HandleFunc("POST /api/messages/{id}/retry", s.apiRetry)
	app.HandleFunc("DELETE /api/messages/{id}", s.apiDelete)
	app.HandleFunc("GET /api/queue", s.apiQueue)
	app.HandleFunc("GET /api/senders", s.apiSenders)
	app.HandleFunc("POST /api/senders/check", s.apiSendersCheck)
	app.HandleFunc("GET /api/stats", s.apiStats)
	app.HandleFunc("GET /nodes", s.nodesPage)
	app.HandleFunc("GET /api/nodes", s.apiNodes)
	app.HandleFunc("GET /api/feedback", s.apiFeedback)

	guarded := s.guard(http.NewCrossOriginProtection().Handler(app))
	open.Handle("/", guarded)
	return secureHeaders(open)
}

// guard applies the access rules of the package documentation.
func (s *Server) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.ui == nil {
			if !loopbackRemote(r.RemoteAddr) || !loopbackHost(r.Host) {
				http.Error(w, "Forbidden: without [[http.users]] the web UI answers only loopback requests to a loopback host name", http.StatusForbidden)
				return
			}
		} else if _, res, retry := s.ui.check(r); res != authOK {
			deny(w, res, retry, `Basic realm="mjrelay", charset="UTF-8"`)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

func loopbackRemote(addr string) bool {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		a, err := netip.ParseAddr(addr)
		return err == nil && a.Unmap().IsLoopback()
	}
	return ap.Addr().Unmap().IsLoopback()
}

func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.d.Ready != nil {
		if err := s.d.Ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready:", err)
			return
		}
	}
	if deg := s.degraded(); deg != "" {
		// Still accepting safely: a load balancer keeps sending mail.
		fmt.Fprintf(w, "ready (degraded: %s)\n", deg)
	} else {
		fmt.Fprintln(w, "ready")
	}
	if note := s.readyNote(r.Context()); note != "" {
		fmt.Fprintln(w, note)
	}
}

// degraded is why a cluster node holds mail locally, or "".
func (s *Server) degraded() string {
	if s.d.Degraded == nil {
		return ""
	}
	return s.d.Degraded()
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func jsonError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
