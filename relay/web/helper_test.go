package web

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/mailjet/account"
	"github.com/mjrelay/mjrelay/mailjet/webhook"
	"github.com/mjrelay/mjrelay/relay/deliver"
	"github.com/mjrelay/mjrelay/relay/inspect"
	"github.com/mjrelay/mjrelay/relay/metrics"
	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/store/storetest"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

var t0 = time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)

// Secrets that must never appear in a page or a JSON document: the
// passwords (and their hashes, which the server has) and the Mailjet key
// (in the account snapshot).
const (
	uiPassword   = "ui-pass-word"
	hookPassword = "hook-pass-word"
	apiKey       = "0123456789abcdef0123456789abcdef"
)

func hash(t testing.TB, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

type env struct {
	srv   *Server
	h     http.Handler
	store *inspect.Store
	queue *fakeQueue
	opts  Options
	smp   *storetest.Sample
}

// envSetup is what options change before the server is built.
type envSetup struct {
	opts Options
	// noMailjet leaves the sample's Mailjet events out of the store.
	noMailjet bool
	// noBodies opens the store with keep_bodies = 0.
	noBodies bool
	deps     []func(*Deps)
}

type envOpt func(*envSetup)

func withUsers(t testing.TB) envOpt {
	return func(s *envSetup) {
		s.opts.Users = []User{{Username: "admin", PasswordHash: hash(t, uiPassword)}}
	}
}

func withWebhook(t testing.TB) envOpt {
	return func(s *envSetup) {
		s.opts.Webhook = User{Username: "mailjet", PasswordHash: hash(t, hookPassword)}
	}
}

func withoutMailjetEvents(s *envSetup) { s.noMailjet = true }

func withoutBodies(s *envSetup) { s.noBodies = true }

func withOptions(f func(*Options)) envOpt { return func(s *envSetup) { f(&s.opts) } }

func withDeps(f func(*Deps)) envOpt { return func(s *envSetup) { s.deps = append(s.deps, f) } }

// newEnv builds a server over a store holding the sample traffic (raw
// bodies kept), a fake queue and a Mailjet account.
func newEnv(t testing.TB, opts ...envOpt) *env {
	t.Helper()
	setup := &envSetup{opts: Options{SenderCheck: "enforce"}}
	for _, o := range opts {
		o(setup)
	}
	keep := time.Hour
	if setup.noBodies {
		keep = 0
	}
	store, err := inspect.Open(filepath.Join(t.TempDir(), "store.db"), inspect.Options{KeepBodies: keep,
		Now: func() time.Time { return t0.Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	smp := storetest.NewSample(t0)
	for _, e := range smp.Events {
		store.Record(e)
	}
	if !setup.noMailjet {
		if err := store.RecordMailjet(context.Background(), smp.Mailjet); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	q := &fakeQueue{items: map[string]queue.Item{}}
	retry := smp.IDs["retry"]
	q.items[retry] = queue.Item{Envelope: queue.Envelope{ID: retry, Received: t0.Add(20 * time.Second), From: "sales@acme.example",
		To: []string{"buyer@slow.example"}, Subject: "Quotation S00017", Class: "transactional"},
		State: queue.State{ID: retry, Attempts: 1, Next: t0.Add(time.Hour), LastError: "421 4.7.0 Try again later"}}
	d := Deps{Store: store, Queue: q, Account: fakeAccount{st: accountState()}, Metrics: metrics.New(nil),
		QueueDepth: func() map[string]int { return map[string]int{"transactional": 1, "bulk": 0} },
		Resolver:   fakeDNS{}, Now: func() time.Time { return t0.Add(time.Hour) }}
	for _, f := range setup.deps {
		f(&d)
	}
	srv, err := New(setup.opts, d)
	if err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, h: srv.Handler(), store: store, queue: q, opts: setup.opts, smp: smp}
}

type reqOpt func(*http.Request)

func auth(user, pw string) reqOpt { return func(r *http.Request) { r.SetBasicAuth(user, pw) } }
func from(addr string) reqOpt     { return func(r *http.Request) { r.RemoteAddr = addr } }
func host(h string) reqOpt        { return func(r *http.Request) { r.Host = h } }
func header(k, v string) reqOpt   { return func(r *http.Request) { r.Header.Set(k, v) } }

// do sends a request as a local browser would (loopback address, Host
// localhost) unless options say otherwise.
func (e *env) do(t testing.TB, method, target string, body io.Reader, opts ...reqOpt) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, body)
	r.RemoteAddr, r.Host = "127.0.0.1:50000", "localhost:8025"
	for _, o := range opts {
		o(r)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

// fakeQueue is a control.Queue over a map.
type fakeQueue struct {
	mu       sync.Mutex
	items    map[string]queue.Item
	retried  []string
	deleted  []string
	inFlight string
}

func (q *fakeQueue) List() []queue.Item {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []queue.Item
	for _, it := range q.items {
		out = append(out, it)
	}
	return out
}

func (q *fakeQueue) Stats() queue.Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return queue.Stats{Messages: len(q.items), DiskBytes: 4096, Segments: 1}
}

func (q *fakeQueue) Retry(_ context.Context, id string) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if id == "" {
		q.retried = append(q.retried, "*")
		return len(q.items), nil
	}
	if _, ok := q.items[id]; !ok {
		return 0, queue.ErrNotFound
	}
	q.retried = append(q.retried, id)
	return 1, nil
}

func (q *fakeQueue) Delete(_ context.Context, id string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if id == q.inFlight {
		return deliver.ErrInFlight
	}
	if _, ok := q.items[id]; !ok {
		return queue.ErrNotFound
	}
	delete(q.items, id)
	q.deleted = append(q.deleted, id)
	return nil
}

type fakeAccount struct{ st account.State }

func (a fakeAccount) State() account.State { return a.st }

func accountState() account.State {
	snap := account.NewSnapshot(t0, apiKey, []account.Sender{
		{ID: 1, Email: "*@acme.example", Status: account.StatusActive, EmailType: "transactional"},
		{ID: 2, Email: "news@acme.example", Status: account.StatusInactive, EmailType: "bulk"},
	}, []account.Domain{{ID: 1, Domain: "acme.example", DKIMStatus: "OK", SPFStatus: "Not found",
		DKIMRecordName: "mailjet._domainkey", DKIMRecordValue: "k=rsa; p=MIGfMA0",
		OwnerShipToken: "tok123", OwnerShipTokenRecordName: "mailjet._abc"}})
	return account.State{Snapshot: snap, Source: account.SourceAPI, Age: 30 * time.Second, LastAttempt: t0}
}

// fakeDNS answers the acme.example records: DKIM and ownership right, SPF
// without Mailjet, no DMARC.
type fakeDNS struct{}

func (fakeDNS) LookupTXT(_ context.Context, name string) ([]string, error) {
	switch strings.TrimSuffix(name, ".") {
	case "mailjet._domainkey.acme.example":
		return []string{"k=rsa; p=MIGfMA0"}, nil
	case "mailjet._abc.acme.example":
		return []string{"tok123"}, nil
	case "acme.example":
		return []string{"v=spf1 mx -all"}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

// addRich records the rich message (storetest.NewRich: HTML with an inline
// image, a remote image at remote and a script that would load beacon, a
// text part, a PDF) as received, sent through the SMTP transport with the
// upstream id upID, and delivered by Mailjet.
func (e *env) addRich(t testing.TB, at time.Time, remote, beacon, upID string) (string, storetest.Rich) {
	t.Helper()
	rich := storetest.NewRich(storetest.RichOptions{From: "invoices@acme.example", To: "mr.x@client.example", Remote: remote, Beacon: beacon})
	id := storetest.QueueID(at, 4242)
	f := storetest.NewFlow(at, id, "invoices@acme.example", []string{"mr.x@client.example"}, rich.Subject).
		Received(rich.Raw).Upstream(upID).Attempt("smtp", "250 OK queued as "+upID, trafficlog.RcptResult{Rcpt: "mr.x@client.example",
		Status: "delivered", Reply: mailjet.ParseReply("250 OK")}).Delivered()
	for _, ev := range f.Events() {
		e.store.Record(ev)
	}
	if err := e.store.RecordMailjet(context.Background(), []webhook.Event{storetest.Mailjet(f.Time().Add(time.Second), "sent", id, "mr.x@client.example", 288230376151799999)}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	return id, rich
}

// record stores events in the env's store.
func (e *env) record(t testing.TB, evs ...trafficlog.Event) {
	t.Helper()
	for _, ev := range evs {
		e.store.Record(ev)
	}
	if err := e.store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// ids lists the ids of the messages f selects.
func (e *env) ids(t testing.TB, f store.Filter) []string { return storetest.IDs(t, e.store, f) }

// checkBody fails t for each of want a body lacks and each of dontWant it
// has.
func checkBody(t testing.TB, body string, want, dontWant []string) {
	t.Helper()
	for _, s := range want {
		if !strings.Contains(body, s) {
			t.Errorf("page lacks %q", s)
		}
	}
	for _, s := range dontWant {
		if strings.Contains(body, s) {
			t.Errorf("page shows %q", s)
		}
	}
}
