package web

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mjrelay/mjrelay/mailjet/account"
	"github.com/mjrelay/mjrelay/mailjet/dnscheck"
)

// dnsTTL is how long DNS check results are reused; the senders page never
// waits for DNS: it shows the last results and starts a check in the
// background when they are older.
const dnsTTL = 15 * time.Minute

// SendersReport is the senders & domains page: the Mailjet account state
// the sender policy enforces, and the DNS health of each sending domain as
// `mjrelay check` reports it.
type SendersReport struct {
	// Enabled is false when the relay does not check senders against
	// Mailjet (policy.sender_check = "off", or no keys).
	Enabled     bool      `json:"enabled"`
	Known       bool      `json:"known"`
	Source      string    `json:"source,omitempty"`
	Stale       bool      `json:"stale"`
	AgeSeconds  float64   `json:"age_seconds,omitempty"`
	FetchedAt   time.Time `json:"fetched_at,omitzero"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	SenderCheck string    `json:"sender_check"`

	Senders []account.Sender `json:"senders"`
	Domains []DomainReport   `json:"domains"`
	// DNSCheckedAt is when the DNS results were gathered; DNSChecking is
	// true while a check runs.
	DNSCheckedAt time.Time `json:"dns_checked_at,omitzero"`
	DNSChecking  bool      `json:"dns_checking"`
	// Failures counts FAIL results.
	Failures int `json:"failures"`
}

// DomainReport is one sending domain.
type DomainReport struct {
	Domain string `json:"domain"`
	// DKIMStatus and SPFStatus are Mailjet's own last verdicts.
	DKIMStatus  string            `json:"dkim_status"`
	SPFStatus   string            `json:"spf_status"`
	LastCheckAt time.Time         `json:"mailjet_last_check_at,omitzero"`
	Checks      []dnscheck.Result `json:"checks"`
}

type senders struct {
	o       Options
	d       Deps
	checker dnscheck.Checker

	mu        sync.Mutex
	results   map[string][]dnscheck.Result
	checkedAt time.Time
	running   bool
}

func newSenders(o Options, d Deps) *senders {
	return &senders{o: o, d: d, checker: dnscheck.Checker{Resolver: d.Resolver}, results: map[string][]dnscheck.Result{}}
}

// report builds the page; force starts a DNS check even if the results are
// fresh (at most one runs at a time).
func (s *senders) report(force bool) SendersReport {
	rep := SendersReport{Senders: []account.Sender{}, Domains: []DomainReport{}, SenderCheck: s.o.SenderCheck}
	if s.d.Account == nil {
		return rep
	}
	rep.Enabled = true
	st := s.d.Account.State()
	rep.Known, rep.Source, rep.Stale, rep.LastAttempt, rep.LastError = st.Known(), st.Source, st.Stale(), st.LastAttempt, st.LastError
	if !st.Known() {
		return rep
	}
	snap := st.Snapshot
	rep.AgeSeconds, rep.FetchedAt = st.Age.Seconds(), snap.FetchedAt
	rep.Senders = append(rep.Senders, snap.Senders...)
	slices.SortFunc(rep.Senders, func(a, b account.Sender) int { return strings.Compare(a.Email, b.Email) })

	s.mu.Lock()
	stale := s.d.Now().Sub(s.checkedAt) > dnsTTL
	if (stale || force) && !s.running {
		s.running = true
		go s.check(snap)
	}
	rep.DNSCheckedAt, rep.DNSChecking = s.checkedAt, s.running
	results := s.results
	s.mu.Unlock()

	// Missing Odoo addresses only warn here: the domain may not be Odoo's.
	ready := dnscheck.Readiness{MissingSender: dnscheck.Warn, RequireDKIM: s.o.RequireDKIM, RequireSPF: s.o.RequireSPF}
	for _, d := range snap.Domains {
		name := account.NormalizeDomain(d.Domain)
		dr := DomainReport{Domain: name, DKIMStatus: d.DKIMStatus, SPFStatus: d.SPFStatus, LastCheckAt: d.LastCheckAt,
			Checks: append(ready.AccountChecks(snap, d), results[name]...)}
		rep.Failures += dnscheck.Failures(dr.Checks)
		rep.Domains = append(rep.Domains, dr)
	}
	slices.SortFunc(rep.Domains, func(a, b DomainReport) int { return strings.Compare(a.Domain, b.Domain) })
	return rep
}

// check runs the four DNS checks of every domain (detached from any
// request, bounded in time): the DNS part of the readiness report, which
// the page shows from the last check instead of waiting for DNS.
func (s *senders) check(snap *account.Snapshot) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out := map[string][]dnscheck.Result{}
	for _, d := range snap.Domains {
		out[account.NormalizeDomain(d.Domain)] = s.checker.Domain(ctx, d)
	}
	s.mu.Lock()
	s.results, s.checkedAt, s.running = out, s.d.Now(), false
	s.mu.Unlock()
}
