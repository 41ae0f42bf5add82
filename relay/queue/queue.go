// Package queue names what the relay needs from its durable message queue,
// so that the SMTP intake, the scheduler, the control socket, the web UI and
// the CLI work with any backend: the embedded segment log (relay/spool)
// or a shared database. Every backend passes the conformance suite in
// queue/queuetest.
package queue

import (
	"context"
	"errors"
	"time"
)

// Errors a queue returns.
var (
	ErrFull     = errors.New("queue: over its size limit, or the disk is short of space")
	ErrNotFound = errors.New("queue: no such message")
	ErrClosed   = errors.New("queue: closed")
)

// Envelope is what the relay knows about a message besides its bytes.
type Envelope struct {
	ID         string    `json:"id"`
	Received   time.Time `json:"received"`
	From       string    `json:"from"`
	To         []string  `json:"to"`
	User       string    `json:"user,omitempty"`
	Client     string    `json:"client,omitempty"`
	Helo       string    `json:"helo,omitempty"`
	UTF8       bool      `json:"utf8,omitempty"`
	HeaderFrom string    `json:"header_from,omitempty"`
	Subject    string    `json:"subject,omitempty"`
	MessageID  string    `json:"message_id,omitempty"`
	Size       int64     `json:"size"`
	// Class is the delivery lane ("transactional" or "bulk"); ClassRule the
	// rule that chose it. Campaign is the Mailjet campaign to set, if any.
	Class     string `json:"class,omitempty"`
	ClassRule string `json:"class_rule,omitempty"`
	Campaign  string `json:"campaign,omitempty"`
	// Unsubscribe is the one-click unsubscribe URL of an Odoo mass
	// mailing (List-Unsubscribe with List-Unsubscribe-Post: RFC 8058),
	// kept so that Mailjet's unsub event can be reported to Odoo.
	Unsubscribe string `json:"unsubscribe,omitempty"`
	// Hold, when set, is why the message may not be delivered yet: it was
	// accepted while a check could not run (the sender check, with the
	// Mailjet account state unknown), and that check runs before its first
	// attempt. It is written for the admin who lists the queue.
	Hold string `json:"hold,omitempty"`
}

// State is a message's delivery progress.
type State struct {
	ID        string    `json:"id"`
	Attempts  int       `json:"attempts"`
	Next      time.Time `json:"next,omitzero"`
	LastError string    `json:"last_error,omitempty"`
	// Pending are the recipients still to deliver; nil means all of To.
	Pending []string `json:"pending,omitempty"`
	// Released: the check the envelope's Hold waits for has passed.
	Released bool `json:"released,omitempty"`
}

// Item is a queued message as List shows it.
type Item struct {
	Envelope Envelope `json:"envelope"`
	State    State    `json:"state"`
}

// Held is why the message waits before its first attempt, or "" when it
// does not (no Hold, or released).
func (it Item) Held() string {
	if it.State.Released {
		return ""
	}
	return it.Envelope.Hold
}

// Stats are a queue's current totals.
type Stats struct {
	Messages  int   `json:"messages"`
	DiskBytes int64 `json:"disk_bytes"`
	Segments  int   `json:"segments"`
}

// Queue is a durable message queue.
//
// Put returns nil only once the message and its envelope will survive a
// crash (the relay answers 250 after it). Subscribe is how the scheduler
// learns of messages to deliver: those queued at the call, then each new
// one once durable. An attempt's outcome is recorded with SetState (deferred:
// the recipients still pending and when to try again) or Done (delivered,
// failed for good or deleted: the message leaves the queue).
type Queue interface {
	// NewID returns a fresh queue id; ids sort by time.
	NewID() string
	// Admit reports ErrFull when a message of size bytes would not be
	// accepted now (the SMTP session asks at MAIL, before the data).
	Admit(size int64) error
	// Put stores a message, the concatenation of parts, durably. env.ID
	// must be set (NewID); Put sets env.Size.
	Put(ctx context.Context, env *Envelope, parts ...[]byte) error
	// Subscribe makes fn see every queued message, at once for those
	// already queued and then each new one; fn must not block for long.
	Subscribe(fn func(Item))
	// Get returns one queued message (ErrNotFound once it is done).
	Get(id string) (Item, error)
	// Body returns a queued message's bytes.
	Body(id string) ([]byte, error)
	// SetState records a message's delivery progress durably.
	SetState(ctx context.Context, st State) error
	// Done removes a message from the queue for good.
	Done(ctx context.Context, id string) error
	// List returns every queued message, oldest first.
	List() []Item
	// Stats returns the current totals.
	Stats() Stats
	// Close stops the queue; queued messages stay for the next Open.
	Close() error
}
