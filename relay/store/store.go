// Package store names what the relay needs from its traffic store, the
// searchable record of every message received or refused, its delivery
// attempts and Mailjet's events, so that the web UI and its API, the
// webhook, `mjrelay log`, `mjrelay queue` and the wiring work with any
// backend: the embedded SQLite store (relay/inspect) or a shared database.
// It holds the interface, the documents queries return and the message
// states; every backend passes the conformance suite in store/storetest.
package store

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/mjrelay/mjrelay/mailjet/webhook"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// Errors a store returns.
var (
	ErrNotFound  = errors.New("store: no such message")
	ErrBadFilter = errors.New("store: bad filter")
	ErrClosed    = errors.New("store: closed")
)

// Store is a traffic store. It observes the relay: it is not in the mail's
// path, and a store that cannot keep up loses records, never mail.
//
// Record (the relay's event stream: a store is a trafficlog.Recorder)
// never waits; RecordMailjet does, so that the webhook can make Mailjet
// retry. What was recorded before a Flush that returned nil is in the
// store for good: queries see it, and it survives a crash.
type Store interface {
	// Record takes one relay event without waiting; an event the store
	// cannot take now is dropped and counted (Health).
	trafficlog.Recorder
	// RecordMailjet takes Mailjet webhook events; it waits for room until
	// ctx ends (ErrClosed after Close).
	RecordMailjet(ctx context.Context, evs []webhook.Event) error
	// Flush waits until everything recorded before it is stored.
	Flush(ctx context.Context) error

	// List returns one page of the messages f selects, newest first
	// (ErrBadFilter for a filter it cannot read, such as a bad cursor).
	List(ctx context.Context, f Filter) (Page, error)
	// Get returns one message with its recipients and timeline
	// (ErrNotFound).
	Get(ctx context.Context, id string) (*Message, error)
	// Raw returns a message's stored bytes and their length (ErrNotFound
	// when none are kept: bodies are off, or pruned).
	Raw(ctx context.Context, id string) (io.Reader, int64, error)
	// Stats returns the counters of [since, until) in buckets of step (at
	// least a minute; at most 1440 buckets).
	Stats(ctx context.Context, since, until time.Time, step time.Duration) (*Stats, error)
	// Funnel returns the delivery funnel of the days (midnight to midnight
	// in loc) from the one holding since to the one holding until.
	Funnel(ctx context.Context, since, until time.Time, loc *time.Location) (*Funnel, error)

	// Prune removes what is past the retention now (a store also prunes
	// by itself) and waits for it.
	Prune(ctx context.Context) error
	// WantsBodies reports whether received events should carry the raw
	// message.
	WantsBodies() bool
	// Health returns the counters of what the store lost or has not
	// written yet.
	Health() Health
	// Close stores what was recorded and closes the store; later Record
	// calls are dropped.
	Close() error
}

// Health is what a store lost or has still to write.
type Health struct {
	// DroppedEvents were not recorded: the store could not keep up, or
	// was closed.
	DroppedEvents uint64 `json:"dropped_events"`
	// DroppedBodies were left out of their records (too many bytes
	// waiting).
	DroppedBodies uint64 `json:"dropped_bodies"`
	// Pending are the events waiting to be written.
	Pending int `json:"pending"`
	// WriteErrors are failed writes (their events are lost; see the log).
	WriteErrors uint64 `json:"write_errors"`
}
