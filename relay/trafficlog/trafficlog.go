// Package trafficlog is what happened to each message: one Event per step
// (received, refused, aborted, attempt, delivered, deferred, failed,
// sandboxed, deleted, and feedback: a report to Odoo), handed to every Recorder: the JSON-lines traffic log
// (JSONLines), the inspection store and the metrics. Recorders observe the
// relay; they never decide anything, and a slow or failing recorder must
// not hold up mail.
package trafficlog

import (
	"bufio"
	"encoding/json"
	"io"
	"sync"
	"time"

	"github.com/mjrelay/mjrelay/mailjet"
)

// Kind is an event's kind.
type Kind string

// Event kinds.
const (
	Received  Kind = "received"
	Refused   Kind = "refused"
	Aborted   Kind = "aborted"
	Attempt   Kind = "attempt"
	Delivered Kind = "delivered"
	Deferred  Kind = "deferred"
	Failed    Kind = "failed"
	Sandboxed Kind = "sandboxed"
	Deleted   Kind = "deleted"
	// Feedback is a report to Odoo about one recipient (feedback.go).
	Feedback Kind = "feedback"
)

// Event is one line of the traffic log. Empty fields are left out. Build
// events with the constructors in events.go, so that every producer fills
// the same fields for the same kind.
type Event struct {
	Time       time.Time `json:"time"`
	Event      Kind      `json:"event"`
	ID         string    `json:"id,omitempty"`
	Client     string    `json:"client,omitempty"`
	User       string    `json:"user,omitempty"`
	Helo       string    `json:"helo,omitempty"`
	TLS        bool      `json:"tls,omitempty"`
	From       string    `json:"from,omitempty"`
	To         []string  `json:"to,omitempty"`
	HeaderFrom string    `json:"header_from,omitempty"`
	Subject    string    `json:"subject,omitempty"`
	MessageID  string    `json:"message_id,omitempty"`
	Size       int64     `json:"size,omitempty"`
	// Class is "transactional" or "bulk"; ClassRule says which rule chose it
	// (login, list-unsubscribe-post, precedence, x-mailjet-prio,
	// sender-email-type, default).
	Class     string `json:"class,omitempty"`
	ClassRule string `json:"class_rule,omitempty"`
	// Verdict is the sender policy's outcome when it is not a plain pass:
	// the reason a refusal or a warning was given.
	Verdict string `json:"verdict,omitempty"`
	// Stage is where a refusal happened: auth, mail, rcpt, data.
	Stage string `json:"stage,omitempty"`
	// Reply is the SMTP reply we gave (refused) or the upstream's
	// (attempts and outcomes); written as one line ("550 5.1.1 text").
	Reply mailjet.Reply `json:"reply,omitzero"`
	// Count is how many refusals a refused event stands for, when a flood
	// of one refusal (the queue full, logins throttled) is recorded as
	// the first one, then one event per interval for those since; 0 is 1.
	Count     int    `json:"count,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Transport string `json:"transport,omitempty"`
	Upstream  string `json:"upstream,omitempty"`
	// UpstreamID is Mailjet's queue id from its reply.
	UpstreamID string       `json:"upstream_id,omitempty"`
	Attempt    int          `json:"attempt,omitempty"`
	Rcpts      []RcptResult `json:"rcpts,omitempty"`
	DurationMS float64      `json:"duration_ms,omitempty"`
	Next       time.Time    `json:"next,omitzero"`
	// Action, Result and Answer describe a feedback event (feedback.go).
	Action string `json:"action,omitempty"`
	Result string `json:"result,omitempty"`
	Answer string `json:"answer,omitempty"`

	// Unsubscribe is the one-click List-Unsubscribe URL of a received
	// message, for the store (the feedback reporter reads it back); it
	// holds a per-recipient token, so it is never written to the log.
	Unsubscribe string `json:"-"`

	// Raw is the stored message (received events only, and only when a
	// recorder asked for bodies); never written to the log.
	Raw []byte `json:"-"`
}

// Millis expresses d in milliseconds, as DurationMS wants it.
func Millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// RcptResult is one recipient's outcome in an attempt.
type RcptResult struct {
	Rcpt   string `json:"rcpt"`
	Status string `json:"status,omitempty"` // delivered, temporary, permanent
	// Reply is written as one line; it is always present (possibly "").
	Reply mailjet.Reply `json:"reply"`
	// Mailjet's ids for this recipient's message (Send API transport).
	MessageID   int64  `json:"mailjet_message_id,omitempty"`
	MessageUUID string `json:"mailjet_message_uuid,omitempty"`
}

// Recorder receives events.
type Recorder interface {
	Record(Event)
}

// Multi sends each event to every recorder.
type Multi []Recorder

func (m Multi) Record(e Event) {
	for _, r := range m {
		r.Record(e)
	}
}

// Discard drops every event.
type Discard struct{}

func (Discard) Record(Event) {}

// JSONLines writes events as JSON lines. Lines are buffered and flushed at
// least every FlushEvery (default 200 ms) and on Close. Each write to w is
// whole lines, so that two processes appending to the same file (the two
// relay processes of a handover, each with O_APPEND) never interleave
// parts of lines.
type JSONLines struct {
	mu    sync.Mutex
	w     *bufio.Writer
	c     io.Closer
	stop  chan struct{}
	done  chan struct{}
	dirty bool
}

// NewJSONLines writes to w; if w is an io.Closer, Close closes it.
func NewJSONLines(w io.Writer) *JSONLines {
	j := &JSONLines{w: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	j.c, _ = w.(io.Closer)
	go j.flusher(200 * time.Millisecond)
	return j
}

// Record writes one event.
func (j *JSONLines) Record(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC()
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	b = append(b, '\n')
	j.mu.Lock()
	if len(b) > j.w.Available() && j.w.Buffered() > 0 {
		// Flush the whole lines buffered so far; the line goes after
		// them, in the buffer or (longer than the buffer) in one write.
		j.w.Flush()
	}
	j.w.Write(b)
	j.dirty = true
	j.mu.Unlock()
}

func (j *JSONLines) flusher(every time.Duration) {
	defer close(j.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			j.Flush()
		case <-j.stop:
			return
		}
	}
}

// Flush writes out buffered lines.
func (j *JSONLines) Flush() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.dirty {
		return nil
	}
	j.dirty = false
	return j.w.Flush()
}

// Close flushes and closes the underlying writer if it is a Closer.
func (j *JSONLines) Close() error {
	close(j.stop)
	<-j.done
	err := j.Flush()
	if j.c != nil {
		if cerr := j.c.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// Memory keeps events in memory, for tests.
type Memory struct {
	mu     sync.Mutex
	events []Event
}

func (m *Memory) Record(e Event) {
	m.mu.Lock()
	m.events = append(m.events, e)
	m.mu.Unlock()
}

// Events returns a copy of what was recorded, optionally only of one kind.
func (m *Memory) Events(kind Kind) []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Event
	for _, e := range m.events {
		if kind == "" || e.Event == kind {
			out = append(out, e)
		}
	}
	return out
}
