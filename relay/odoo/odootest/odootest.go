// Package odootest is an Odoo 17/18 stand-in for tests: an HTTP server
// with /xmlrpc/2/common (version, authenticate) and /xmlrpc/2/object
// (execute_kw) that applies Odoo's documented rules strictly, and the
// one-click unsubscribe route of Odoo's mass mailing
// (POST /mailing/<id>/unsubscribe_oneclick).
//
// mail.thread message_process counts a bounce only as Odoo would process
// one (bounce.go): it ignores a message whose own Message-Id is a known
// mail.message, detects a bounce by the bounce alias in To, a
// MAILER-DAEMON From or a multipart/report type, reads the bounced address
// from the first message/delivery-status part (a per-message block and at
// least one per-recipient block whose Final-Recipient has a ';'), and
// finds the original by the Message-Id (or X-Odoo-Message-Id) of the first
// message/rfc822 or text/rfc822-headers part among the mail.message ids the
// test declared (AddMessage). Anything else is recorded as rejected, with
// why. mail.blacklist keeps rows with an active flag and follows Odoo's
// create (which does not see archived rows, so creating an archived
// address fails on the unique constraint); every call is recorded with its
// context. The API key, the user's rights and an outage are settable.
package odootest

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"

	"github.com/mjrelay/mjrelay/relay/odoo/xmlrpc"
)

// Server is a running stand-in.
type Server struct {
	srv *httptest.Server

	mu       sync.Mutex
	db       string
	login    string
	key      string
	uid      int64
	rights   Rights
	down     bool
	alias    string
	messages map[string]bool // mail.message message_id values
	seenDSN  map[string]int  // top-level Message-Ids of processed bounces
	bounces  []Bounce
	rejected []Rejection
	calls    []Call
	bl       []blRow
	unsubs   []Unsubscribe
	requests int
}

// Rights are what the stand-in's user may do.
type Rights struct {
	Mail      bool // create mail.message (message_process)
	Blacklist bool // create and write mail.blacklist
}

// Bounce is a message_process call Odoo would have processed as a bounce.
type Bounce struct {
	MessageID   string // the DSN's own
	Original    string // the original's Message-Id, as found
	Recipient   string // normalised, from Final-Recipient
	Status      string
	Diagnostic  string
	Explanation string // the first text/plain part: Odoo's failure_reason
	Raw         []byte
}

// Rejection is a message_process call Odoo would not have counted, and why.
type Rejection struct {
	Why string
	Raw []byte
}

// Call is one execute_kw call on mail.blacklist.
type Call struct {
	Method  string
	Args    []any
	Kwargs  map[string]any
	Context map[string]any
}

// Unsubscribe is one POST to the one-click route.
type Unsubscribe struct {
	Path, Query, ContentType, Body string
	OK                             bool
}

type blRow struct {
	id     int64
	email  string
	active bool
	notes  []string
}

// Start starts a stand-in for database db, with one user login whose API
// key is key, with every right, the bounce alias "bounce@example.com".
func Start(db, login, key string) *Server {
	s := &Server{db: db, login: login, key: key, uid: 7, rights: Rights{Mail: true, Blacklist: true},
		alias: "bounce@example.com", messages: map[string]bool{}, seenDSN: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /xmlrpc/2/common", s.common)
	mux.HandleFunc("POST /xmlrpc/2/object", s.object)
	mux.HandleFunc("/mailing/{id}/unsubscribe_oneclick", s.oneClick)
	s.srv = httptest.NewServer(s.gate(mux))
	return s
}

// URL is the stand-in's base URL (odoo.url).
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// SetDown makes every request fail as an unreachable Odoo does (the
// connection is closed without an answer) until SetDown(false).
func (s *Server) SetDown(down bool) { s.mu.Lock(); s.down = down; s.mu.Unlock() }

// SetKey replaces the user's API key.
func (s *Server) SetKey(key string) { s.mu.Lock(); s.key = key; s.mu.Unlock() }

// SetRights sets what the user may do.
func (s *Server) SetRights(r Rights) { s.mu.Lock(); s.rights = r; s.mu.Unlock() }

// SetBounceAlias sets the alias domain's bounce address.
func (s *Server) SetBounceAlias(a string) { s.mu.Lock(); s.alias = strings.ToLower(a); s.mu.Unlock() }

// AddMessage declares a mail.message whose message_id is id ("<…>").
func (s *Server) AddMessage(id string) { s.mu.Lock(); s.messages[id] = true; s.mu.Unlock() }

// AddBlacklisted adds a mail.blacklist row, archived unless active.
func (s *Server) AddBlacklisted(email string, active bool) {
	s.mu.Lock()
	s.bl = append(s.bl, blRow{id: int64(len(s.bl) + 1), email: strings.ToLower(email), active: active})
	s.mu.Unlock()
}

// Bounces are the bounces counted, in order.
func (s *Server) Bounces() []Bounce {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Bounce(nil), s.bounces...)
}

// Rejected are the message_process calls that would not count as bounces.
func (s *Server) Rejected() []Rejection {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Rejection(nil), s.rejected...)
}

// DuplicateDSNs are the DSN Message-Ids processed more than once (Odoo
// does not de-duplicate bounces: each counted again).
func (s *Server) DuplicateDSNs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id, n := range s.seenDSN {
		if n > 1 {
			out = append(out, id)
		}
	}
	return out
}

// BlacklistCalls are the execute_kw calls on mail.blacklist, in order.
func (s *Server) BlacklistCalls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Blacklisted returns the active blacklist rows' addresses with the notes
// posted on them.
func (s *Server) Blacklisted() map[string][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]string{}
	for _, r := range s.bl {
		if r.active {
			out[r.email] = append([]string{}, r.notes...)
		}
	}
	return out
}

// Unsubscribes are the one-click POSTs received.
func (s *Server) Unsubscribes() []Unsubscribe {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Unsubscribe(nil), s.unsubs...)
}

// Requests counts the requests answered (not those refused while down).
func (s *Server) Requests() int { s.mu.Lock(); defer s.mu.Unlock(); return s.requests }

func (s *Server) gate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		down := s.down
		if !down {
			s.requests++
		}
		s.mu.Unlock()
		if down {
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					if tc, ok := c.(*net.TCPConn); ok {
						tc.SetLinger(0)
					}
					c.Close()
					return
				}
			}
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) common(w http.ResponseWriter, r *http.Request) {
	method, params, err := xmlrpc.DecodeCall(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		fault(w, 1, "ExpatError: "+err.Error())
		return
	}
	switch method {
	case "version":
		respond(w, map[string]any{"server_version": "17.0", "server_serie": "17.0", "protocol_version": 1,
			"server_version_info": []any{17, 0, 0, "final", 0, ""}})
	case "authenticate", "login":
		want := 4
		if method == "login" {
			want = 3
		}
		if len(params) != want {
			fault(w, 1, fmt.Sprintf("TypeError: %s() takes %d arguments (%d given)", method, want, len(params)))
			return
		}
		db, _ := params[0].(string)
		login, _ := params[1].(string)
		key, _ := params[2].(string)
		s.mu.Lock()
		okDB, ok := db == s.db, login == s.login && key == s.key
		uid := s.uid
		s.mu.Unlock()
		if !okDB {
			fault(w, 1, fmt.Sprintf("psycopg2.OperationalError: connection failed: FATAL:  database \"%s\" does not exist", db))
			return
		}
		if !ok {
			respond(w, false) // Odoo's answer to a wrong login or key
			return
		}
		respond(w, uid)
	default:
		fault(w, 1, fmt.Sprintf("NameError: method not available %s", method))
	}
}

func (s *Server) object(w http.ResponseWriter, r *http.Request) {
	method, params, err := xmlrpc.DecodeCall(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		fault(w, 1, "ExpatError: "+err.Error())
		return
	}
	if method != "execute_kw" || len(params) < 6 || len(params) > 7 {
		fault(w, 1, fmt.Sprintf("NameError: %s with %d arguments", method, len(params)))
		return
	}
	db, _ := params[0].(string)
	uid, _ := params[1].(int64)
	key, _ := params[2].(string)
	model, _ := params[3].(string)
	fn, _ := params[4].(string)
	args, okArgs := params[5].([]any)
	kw := map[string]any{}
	if len(params) == 7 {
		var ok bool
		if kw, ok = params[6].(map[string]any); !ok {
			fault(w, 1, "TypeError: keyword arguments must be a struct")
			return
		}
	}
	if !okArgs {
		fault(w, 1, "TypeError: positional arguments must be an array")
		return
	}
	s.mu.Lock()
	authOK := db == s.db && uid == s.uid && key == s.key
	s.mu.Unlock()
	if !authOK {
		fault(w, 3, "Access Denied")
		return
	}
	if strings.HasPrefix(fn, "_") {
		fault(w, 1, fmt.Sprintf("AttributeError: Private methods (such as '%s.%s') cannot be called remotely.", model, fn))
		return
	}
	v, f := s.dispatch(model, fn, args, kw)
	if f != nil {
		fault(w, f.Code, f.String)
		return
	}
	respond(w, v)
}

func (s *Server) dispatch(model, fn string, args []any, kw map[string]any) (any, *xmlrpc.Fault) {
	s.mu.Lock()
	rights := s.rights
	s.mu.Unlock()
	if fn == "check_access_rights" {
		op, _ := firstArg(args).(string)
		if raise, ok := kw["raise_exception"].(bool); !ok || raise {
			return nil, &xmlrpc.Fault{Code: 1, String: "the relay's rights check must not raise"}
		}
		switch model {
		case "mail.message":
			return rights.Mail, nil
		case "mail.blacklist":
			return rights.Blacklist || op == "read", nil
		}
		return false, nil
	}
	switch model {
	case "mail.thread":
		if fn != "message_process" {
			break
		}
		if !rights.Mail {
			return nil, &xmlrpc.Fault{Code: 4, String: "You are not allowed to create 'Message' (mail.message) records."}
		}
		return s.messageProcess(args, kw)
	case "mail.blacklist":
		return s.blacklist(fn, args, kw, rights)
	}
	return nil, &xmlrpc.Fault{Code: 1, String: fmt.Sprintf("AttributeError: type object '%s' has no attribute '%s'", model, fn)}
}

func firstArg(args []any) any {
	if len(args) == 0 {
		return nil
	}
	return args[0]
}

func respond(w http.ResponseWriter, v any) {
	b, err := xmlrpc.EncodeResponse(v)
	if err != nil {
		fault(w, 1, err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.Write(b)
}

func fault(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/xml")
	w.Write(xmlrpc.EncodeFault(xmlrpc.Fault{Code: code, String: msg}))
}

// mailingRoute is Odoo's one-click route.
var mailingRoute = regexp.MustCompile(`^/mailing/\d+/unsubscribe_oneclick$`)

func (s *Server) oneClick(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	u := Unsubscribe{Path: r.URL.Path, Query: r.URL.RawQuery, ContentType: r.Header.Get("Content-Type"), Body: string(body)}
	// RFC 8058: a POST, form-encoded, whose body is exactly this.
	u.OK = r.Method == http.MethodPost && mailingRoute.MatchString(r.URL.Path) &&
		strings.HasPrefix(u.ContentType, "application/x-www-form-urlencoded") &&
		bytes.Equal(bytes.TrimSpace(body), []byte("List-Unsubscribe=One-Click")) &&
		r.URL.Query().Get("hash_token") != ""
	s.mu.Lock()
	s.unsubs = append(s.unsubs, u)
	s.mu.Unlock()
	if !u.OK {
		http.Error(w, "Bad Request", http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusOK)
}
