package store

import (
	"fmt"
	"strconv"
)

// ListPlan is how a store runs List: one scan of its messages in key order,
// newest first, or several (each a branch of a UNION), of the messages
// that meet every condition. PlanList makes it from a Filter, so that
// every backend lists the same messages.
type ListPlan struct {
	Limit int
	Scans []Scan
	// Conditions (zero values do not filter).
	Addrs    []string // address keys it has (AddrKeys)
	States   []string
	Class    string
	Reason   string // its Summary.Why
	Feedback string // a feedback state, or "any"
	// Key bounds: Below the cursor's key, AtLeast and Under Since's and
	// Until's (KeyAt); 0 for none.
	Below, AtLeast, Under int64
}

// Scan is what a List scan runs over in key order: every message (the zero
// Scan), the messages with address key Addr, those the words match, or
// the message of an id.
type Scan struct {
	Addr      string
	Words     []Word
	QueueID   string // the message's id
	MailjetID string // one of its recipients' Mailjet ids
	UUID      string // one of its recipients' Mailjet UUIDs
}

// PlanList reads a Filter (ErrBadFilter for a cursor no store made).
func PlanList(f Filter) (ListPlan, error) {
	p := ListPlan{Limit: f.Limit, Scans: []Scan{{}}, States: f.States(), Class: f.Class, Reason: f.Reason, Feedback: f.Feedback}
	if p.Limit <= 0 {
		p.Limit = 50
	}
	p.Limit = min(p.Limit, 1000)
	if f.Cursor != "" {
		c, err := strconv.ParseInt(f.Cursor, 10, 64)
		if err != nil || c <= 0 {
			return ListPlan{}, fmt.Errorf("%w: cursor %q", ErrBadFilter, f.Cursor)
		}
		p.Below = c
	}
	if !f.Since.IsZero() {
		p.AtLeast = KeyAt(f.Since)
	}
	if !f.Until.IsZero() {
		p.Under = KeyAt(f.Until)
	}
	from, to := AddrFilter("f:", f.From), AddrFilter("t:", f.To)
	search := ParseSearch(f.Q)
	switch {
	case search.Upstream != "":
		// An id finds its message, and so does an upstream's id that
		// looks like it: each is a scan.
		p.Scans = []Scan{{QueueID: search.QueueID, MailjetID: search.MailjetID, UUID: search.UUID, Words: search.Words},
			{Addr: UpstreamKey(search.Upstream)}}
	case search.Domain != "":
		// A domain: messages from it or to it.
		p.Scans = []Scan{{Addr: DomainKey("f:", search.Domain)}, {Addr: DomainKey("t:", search.Domain)}}
	}
	// The scan runs over the narrowest index: the words, else the
	// recipient, else the sender.
	switch {
	case len(p.Scans) > 1:
	case len(search.Words) > 0:
		p.Scans[0] = Scan{Words: search.Words}
	case to != "":
		p.Scans[0], to = Scan{Addr: to}, ""
	case from != "":
		p.Scans[0], from = Scan{Addr: from}, ""
	}
	for _, a := range []string{from, to} {
		if a != "" {
			p.Addrs = append(p.Addrs, a)
		}
	}
	return p, nil
}
