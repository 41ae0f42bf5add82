// Package account holds the state of the Mailjet account that the sender
// policy needs: the senders (/v3/REST/sender) and sending domains
// (/v3/REST/dns). [Client] reads them through the official SDK, [Cache]
// refreshes them periodically and on demand and persists the last good
// [Snapshot] so that the relay keeps enforcing through API outages.
package account

import (
	"strings"
	"time"

	"golang.org/x/net/idna"
)

// Sender statuses and the DNS check status that means "fine".
const (
	StatusActive   = "Active"
	StatusInactive = "Inactive"
	StatusDeleted  = "Deleted"
	CheckOK        = "OK"
)

// Sender is one sender of the account.
type Sender struct {
	ID        int64     `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name,omitempty"`
	Status    string    `json:"status"`
	EmailType string    `json:"email_type,omitempty"`
	DNSID     int64     `json:"dns_id,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
}

// IsWildcard reports whether the sender is a domain sender ("*@domain").
func (s Sender) IsWildcard() bool { return strings.HasPrefix(s.Email, "*@") }

// Domain is one sending domain of the account with Mailjet's view of its DNS.
type Domain struct {
	ID                       int64     `json:"id"`
	Domain                   string    `json:"domain"`
	DKIMStatus               string    `json:"dkim_status"`
	SPFStatus                string    `json:"spf_status"`
	DKIMRecordName           string    `json:"dkim_record_name"`
	DKIMRecordValue          string    `json:"dkim_record_value"`
	SPFRecordValue           string    `json:"spf_record_value,omitempty"`
	OwnerShipToken           string    `json:"ownership_token"`
	OwnerShipTokenRecordName string    `json:"ownership_token_record_name"`
	IsCheckInProgress        bool      `json:"is_check_in_progress,omitempty"`
	LastCheckAt              time.Time `json:"last_check_at,omitzero"`
}

// OwnershipRecord is the full name of the ownership TXT record. Mailjet gives
// the host part ("mailjet._0123abcd"); a name that already ends in the domain
// is used as is.
func (d Domain) OwnershipRecord() string { return qualify(d.OwnerShipTokenRecordName, d.Domain) }

// DKIMRecord is the full name of the DKIM TXT record.
func (d Domain) DKIMRecord() string { return qualify(d.DKIMRecordName, d.Domain) }

func qualify(name, domain string) string {
	name = strings.TrimSuffix(strings.TrimSpace(name), ".")
	if name == "" {
		return ""
	}
	ln, ld := strings.ToLower(name), strings.ToLower(domain)
	if ln == ld || strings.HasSuffix(ln, "."+ld) {
		return name
	}
	return name + "." + domain
}

// Snapshot is the account state at one moment. It is immutable once built;
// build it with [NewSnapshot] (or read it with [ReadSnapshot]).
type Snapshot struct {
	Version   int       `json:"version"`
	FetchedAt time.Time `json:"fetched_at"`
	// APIKey is the (public) API key the state belongs to; a persisted
	// snapshot of another key is ignored.
	APIKey  string   `json:"api_key"`
	Senders []Sender `json:"senders"`
	Domains []Domain `json:"domains"`

	byEmail  map[string][]int // lower-cased email (or "*@domain") → indexes in Senders
	byDomain map[string]int   // domain → index in Domains
	active   map[string]bool  // domains with an Active sender
}

const snapshotVersion = 1

// NewSnapshot builds an indexed snapshot.
func NewSnapshot(fetchedAt time.Time, apiKey string, senders []Sender, domains []Domain) *Snapshot {
	s := &Snapshot{Version: snapshotVersion, FetchedAt: fetchedAt, APIKey: apiKey, Senders: senders, Domains: domains}
	s.index()
	return s
}

func (s *Snapshot) index() {
	s.byEmail = make(map[string][]int, len(s.Senders))
	s.byDomain = make(map[string]int, len(s.Domains))
	s.active = map[string]bool{}
	for i, sn := range s.Senders {
		key, domain, ok := normalize(sn.Email)
		if !ok {
			continue
		}
		s.byEmail[key] = append(s.byEmail[key], i)
		if sn.Status == StatusActive {
			s.active[domain] = true
		}
	}
	for i, d := range s.Domains {
		if name := NormalizeDomain(d.Domain); name != "" {
			s.byDomain[name] = i
		}
	}
}

// Match is the outcome of [Snapshot.Authorize].
type Match struct {
	// Allowed is true when an Active sender authorizes the address.
	Allowed bool
	// Found is true when Sender is set: the Active sender that authorizes the
	// address, or else the closest sender that would (exact before wildcard,
	// Inactive before Deleted).
	Found  bool
	Sender Sender
}

// Authorize applies Mailjet's rule: addr is allowed if an Active sender has
// exactly that Email (case-insensitive) or an Active "*@domain" sender exists
// for its domain.
func (s *Snapshot) Authorize(addr string) Match {
	key, domain, ok := normalize(addr)
	if !ok {
		return Match{}
	}
	var best Match
	rank := 0
	for n, k := range []string{key, "*@" + domain} {
		for _, i := range s.byEmail[k] {
			sn := s.Senders[i]
			r := 1 // the closer the better: exact beats wildcard, Inactive beats Deleted
			if sn.Status != StatusDeleted {
				r++
			}
			if n == 0 {
				r += 2
			}
			if sn.Status == StatusActive {
				return Match{Allowed: true, Found: true, Sender: sn}
			}
			if r > rank {
				best, rank = Match{Found: true, Sender: sn}, r
			}
		}
	}
	return best
}

// KnowsDomain reports whether domain is a sending domain of the account: an
// Active sender in it (exact or wildcard) or a dns entry for it.
func (s *Snapshot) KnowsDomain(domain string) bool {
	d := NormalizeDomain(domain)
	if d == "" {
		return false
	}
	_, ok := s.byDomain[d]
	return ok || s.active[d]
}

// Domain returns the dns entry for name.
func (s *Snapshot) Domain(name string) (Domain, bool) {
	i, ok := s.byDomain[NormalizeDomain(name)]
	if !ok {
		return Domain{}, false
	}
	return s.Domains[i], true
}

// SplitAddress returns the lower-cased address and its domain (IDNA ASCII
// form); ok is false when addr has no '@' or an empty side.
func SplitAddress(addr string) (address, domain string, ok bool) { return normalize(addr) }

func normalize(addr string) (key, domain string, ok bool) {
	addr = strings.TrimSpace(addr)
	addr = strings.TrimSuffix(strings.TrimPrefix(addr, "<"), ">")
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return "", "", false
	}
	domain = NormalizeDomain(addr[at+1:])
	if domain == "" {
		return "", "", false
	}
	return strings.ToLower(addr[:at]) + "@" + domain, domain, true
}

// NormalizeDomain lower-cases a domain, drops a trailing dot and converts
// an internationalized name to its ASCII (punycode) form.
func NormalizeDomain(d string) string {
	d = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
	for i := 0; i < len(d); i++ {
		if d[i] >= 0x80 {
			if a, err := idna.Lookup.ToASCII(d); err == nil {
				return a
			}
			return d
		}
	}
	return d
}
