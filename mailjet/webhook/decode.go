package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// MaxFieldBytes clips each string field of an event.
const MaxFieldBytes = 1 << 10

// maxNameBytes clips the event name a Skip reports.
const maxNameBytes = 40

// Why an element of the payload was skipped (the relay's metrics and logs
// label skipped events so).
const (
	// SkipMalformed: not a JSON object, no event name, or over
	// MaxEventBytes.
	SkipMalformed = "malformed"
	// SkipUnknownEvent: an event name that is not one of Events.
	SkipUnknownEvent = "unknown_event"
	// SkipNoID: none of CustomID, MessageID and Message_GUID, so nothing
	// to join the event to.
	SkipNoID = "no_id"
)

// Skip is an element of the payload that the Decoder did not turn into an
// Event, and why.
type Skip struct {
	// Event is the event name it gave (lower case, at most 40 bytes), ""
	// when none could be read.
	Event string
	// Reason is SkipMalformed, SkipUnknownEvent or SkipNoID.
	Reason string
	// Detail says what was wrong, for the log.
	Detail string
}

// Decoder reads the events of one webhook payload as the body arrives: it
// holds one element of at most MaxEventBytes, and each string field of an
// event is clipped to MaxFieldBytes (in a copy that does not keep the rest
// of the body alive), so that memory stays bounded whatever the size of the
// body. Each element is decoded on its own and leniently (a field of the
// wrong type is ignored), so that a malformed event costs only itself.
type Decoder struct {
	sp    *splitter
	now   func() time.Time
	batch []Event
}

// NewDecoder returns a decoder of the payload r; now stamps events that
// carry no usable time (nil: time.Now).
func NewDecoder(r io.Reader, now func() time.Time) *Decoder {
	if now == nil {
		now = time.Now
	}
	return &Decoder{sp: newSplitter(r), now: now}
}

// Next returns the next element of the payload: a usable event (skip is
// nil), or the reason it was skipped. After the last element it returns
// io.EOF; when the body cannot be read or its array syntax breaks, another
// error (the elements before it were returned, the rest is not read).
func (d *Decoder) Next() (ev Event, skip *Skip, err error) {
	raw, oversize, err := d.sp.next()
	if err != nil {
		return ev, nil, err
	}
	if oversize {
		return ev, &Skip{Reason: SkipMalformed, Detail: fmt.Sprintf("event object over %d KiB", MaxEventBytes>>10)}, nil
	}
	ev, reason, detail := decodeEvent(raw, d.now)
	if reason != "" {
		return Event{}, &Skip{Event: clip(ev.Event, maxNameBytes), Reason: reason, Detail: detail}, nil
	}
	return ev, nil, nil
}

// Batch returns the next usable events of the payload, at most max of
// them, and calls skip (when not nil) for each element it passes over. The
// slice is reused by the next call. Fewer than max events come with an
// error: io.EOF at the end of the payload, or the error that ended it (as
// from Next); the events returned with it are good all the same.
func (d *Decoder) Batch(max int, skip func(Skip)) ([]Event, error) {
	if cap(d.batch) < max {
		d.batch = make([]Event, 0, max)
	}
	d.batch = d.batch[:0]
	for len(d.batch) < max {
		ev, s, err := d.Next()
		switch {
		case err != nil:
			return d.batch, err
		case s != nil:
			if skip != nil {
				skip(*s)
			}
		default:
			d.batch = append(d.batch, ev)
		}
	}
	return d.batch, nil
}

// decodeEvent reads one element leniently: fields of the wrong type are
// ignored. reason is "" when the event is usable, else a Skip reason.
func decodeEvent(raw []byte, now func() time.Time) (ev Event, reason, detail string) {
	var f map[string]json.RawMessage
	if err := json.Unmarshal(raw, &f); err != nil || f == nil {
		return ev, SkipMalformed, "not a JSON object"
	}
	ev.Event = strings.ToLower(str(f["event"]))
	switch {
	case ev.Event == "":
		return ev, SkipMalformed, "no event name"
	case !Known(ev.Event):
		return ev, SkipUnknownEvent, "unknown event name"
	}
	if t, ok := num(f["time"]); ok && t > 0 && t < 1e11 {
		ev.Time = time.Unix(int64(t), 0).UTC()
	} else {
		ev.Time = now().UTC()
	}
	if raw := f["MessageID"]; raw != nil {
		s := str(raw)
		if s == "" {
			s = string(bytes.TrimSpace(raw))
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 { // exact, beyond float precision
			ev.MessageID = n
		} else if v, ok := num(raw); ok && v >= 1 && v < 9e18 {
			ev.MessageID = int64(v)
		}
	}
	ev.MessageUUID = strings.ToLower(str(f["Message_GUID"]))
	ev.CustomID = str(f["CustomID"])
	if ev.MessageID == 0 && ev.MessageUUID == "" && ev.CustomID == "" {
		return ev, SkipNoID, "no CustomID, MessageID or Message_GUID"
	}
	for _, s := range [...]struct {
		key string
		dst *string
	}{
		{"email", &ev.Email}, {"customcampaign", &ev.Campaign}, {"smtp_reply", &ev.SMTPReply},
		{"error_related_to", &ev.ErrorRelatedTo}, {"error", &ev.Error}, {"comment", &ev.Comment},
		{"source", &ev.Source}, {"url", &ev.URL}, {"ip", &ev.IP}, {"geo", &ev.Geo}, {"agent", &ev.Agent},
	} {
		*s.dst = str(f[s.key])
	}
	ev.HardBounce = boolean(f["hard_bounce"])
	ev.Blocked = boolean(f["blocked"])
	if id, ok := num(f["mj_list_id"]); ok {
		ev.ListID = int64(id)
	}
	return ev, "", ""
}

// str returns a JSON string (clipped to MaxFieldBytes), or "" for anything
// else.
func str(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return clip(s, MaxFieldBytes)
}

// num reads a JSON number or a string holding one.
func num(raw json.RawMessage) (float64, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return 0, false
	}
	s := string(raw)
	if raw[0] == '"' {
		s = str(raw)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false
	}
	return v, true
}

func boolean(raw json.RawMessage) bool {
	switch strings.ToLower(strings.Trim(string(bytes.TrimSpace(raw)), `"`)) {
	case "true", "1":
		return true
	}
	return false
}
