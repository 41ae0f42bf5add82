// Package feedback reports what happened to a message after the relay's
// 250 back into Odoo, in the forms Odoo processes natively: a Mailjet
// bounce, a block that is the recipient's (an unknown user, a domain with
// no mail host, an address Mailjet preblocked) or a permanent failure at
// the relay itself becomes one RFC 3464 DSN per recipient handed to
// mail.thread message_process; a spam complaint blacklists the address
// (mail.blacklist); an unsubscription POSTs to Odoo's one-click URL that
// the message carried (RFC 8058), or blacklists when configured to. Blocks
// that are not the recipient's fault (content, spam filter, system) are not
// reported: they are alerts (trafficlog feedback events with result
// "alert", and metrics).
//
// Exactly once, never lost: every report is first written to an Outbox
// (this file: the interface; feedback/journal: the embedded one in
// data_dir/outbox; feedback/feedbacktest: the conformance suite every
// backend passes) before the webhook answers 200 or the failed message
// leaves the queue, keyed by (message, recipient, trigger) so that
// Mailjet's resends (for 24 h) and a relay retry add nothing; the Reporter
// (reporter.go) sends what is due, with backoff while Odoo is down or
// faulting, and parks everything while Odoo refuses the relay's login or
// rights, until an administrator fixes them.
package feedback

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"time"
)

// Trigger is what happened to the recipient: the de-duplication kind.
type Trigger string

// Triggers.
const (
	// TriggerBounce: the mail did not reach the recipient (a Mailjet
	// bounce, a block that is the recipient's, a failure at the relay).
	TriggerBounce Trigger = "bounce"
	TriggerSpam   Trigger = "spam"
	TriggerUnsub  Trigger = "unsub"
)

// Action is what the relay does in Odoo.
type Action string

// Actions.
const (
	ActionDSN         Action = "bounce"      // a DSN through message_process
	ActionBlacklist   Action = "blacklist"   // mail.blacklist
	ActionUnsubscribe Action = "unsubscribe" // the one-click POST
)

// Item is one report for Odoo, complete: sending it needs nothing else.
type Item struct {
	// Key is KeyOf(Message, Recipient, Trigger); an outbox holds a key once.
	Key       string    `json:"key"`
	Message   string    `json:"message"` // the relay's queue id
	Recipient string    `json:"rcpt"`
	Trigger   Trigger   `json:"trigger"`
	Action    Action    `json:"action"`
	Source    string    `json:"source"` // "mailjet bounce", "mailjet blocked", "relay", "mailjet spam"…
	Time      time.Time `json:"time"`   // of the event
	// Reason is the sentence for Odoo: the DSN's text part, the note
	// posted on the blacklist entry.
	Reason string `json:"reason"`
	// A DSN's particulars (ActionDSN).
	Status     string    `json:"status,omitempty"`
	Diagnostic string    `json:"diagnostic,omitempty"`
	RemoteMTA  string    `json:"remote_mta,omitempty"`
	To         string    `json:"to,omitempty"` // Odoo's bounce address
	Arrival    time.Time `json:"arrival,omitzero"`
	Headers    []byte    `json:"headers,omitempty"` // the original's header block
	// URL is the one-click unsubscribe URL (ActionUnsubscribe).
	URL string `json:"url,omitempty"`
}

// KeyOf is the de-duplication key of (message, recipient, trigger).
func KeyOf(message, rcpt string, t Trigger) string {
	sum := sha256.Sum256([]byte(message + "\x00" + strings.ToLower(rcpt) + "\x00" + string(t)))
	return hex.EncodeToString(sum[:16])
}

// State is a pending item's progress.
type State struct {
	Added     time.Time `json:"added"`
	Attempts  int       `json:"attempts,omitempty"`
	Next      time.Time `json:"next,omitzero"` // not before; zero: due at once
	LastError string    `json:"last_error,omitempty"`
}

// Entry is a pending item with its state.
type Entry struct {
	Item
	State State `json:"state"`
}

// Outcome is how an item ended.
type Outcome string

// Outcomes.
const (
	Reported Outcome = "reported" // Odoo took it
	Failed   Outcome = "failed"   // Odoo refused this report for good
)

// Result is an item's end.
type Result struct {
	Outcome Outcome   `json:"outcome"`
	At      time.Time `json:"at"`
	Answer  string    `json:"answer,omitempty"` // Odoo's answer
}

// Stats are an outbox's totals.
type Stats struct {
	Pending int       `json:"pending"`
	Oldest  time.Time `json:"oldest,omitzero"` // the oldest pending item's Added
	// Remembered are the finished keys kept for de-duplication.
	Remembered int `json:"remembered"`
}

// ErrNotFound is returned for a key that is not pending.
var ErrNotFound = errors.New("feedback: no such pending item")

// Outbox is the durable list of reports for Odoo.
//
// Add returns only once the items it added will survive a crash (the
// webhook answers 200 after it); it skips the keys it holds, pending or
// finished and not yet forgotten. Claim hands out due items, each leased
// for a while so that no other claimer (another node) takes it meanwhile;
// the claimer then records Retry (a failed attempt: the item stays, due at
// State.Next) or Finish (the item leaves; its key is remembered until
// Forget). Every backend passes feedbacktest.Run.
type Outbox interface {
	// Add stores the items whose keys are new, durably, and returns them.
	Add(ctx context.Context, items []Item) ([]Item, error)
	// Claim returns up to max pending items due at now (Next ≤ now) and not
	// leased, oldest first, and leases them until now+lease.
	Claim(ctx context.Context, now time.Time, max int, lease time.Duration) ([]Entry, error)
	// Retry records a failed attempt; the lease ends.
	Retry(ctx context.Context, key string, st State) error
	// Finish records an item's end: it leaves the pending items, its key
	// is remembered.
	Finish(ctx context.Context, key string, r Result) error
	// Forget drops the keys finished before t and returns how many.
	Forget(ctx context.Context, before time.Time) (int, error)
	// List returns up to max pending items, oldest first.
	List(ctx context.Context, max int) ([]Entry, error)
	Stats(ctx context.Context) (Stats, error)
	Close() error
}
