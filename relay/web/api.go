package web

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/store/mimeview"
)

// parseFilter reads the list filters of the API and the UI: state, class,
// from, to, q, reason, since, until, limit, cursor (and tz, the browser's
// offset from UTC in minutes, for since/until without a zone).
func parseFilter(v url.Values, now time.Time) (store.Filter, error) {
	f := store.Filter{State: v.Get("state"), Class: v.Get("class"), From: v.Get("from"), To: v.Get("to"),
		Q: v.Get("q"), Reason: v.Get("reason"), Cursor: v.Get("cursor")}
	if err := store.CheckStates(f.State); err != nil {
		return f, err
	}
	if f.Feedback = v.Get("feedback"); store.CheckFeedback(f.Feedback) != nil {
		return f, store.CheckFeedback(f.Feedback)
	}
	loc, err := parseTZ(v.Get("tz"))
	if err != nil {
		return f, err
	}
	if f.Since, err = store.ParseTime(v.Get("since"), now, loc); err != nil {
		return f, fmt.Errorf("since: %w", err)
	}
	if f.Until, err = store.ParseTime(v.Get("until"), now, loc); err != nil {
		return f, fmt.Errorf("until: %w", err)
	}
	if l := v.Get("limit"); l != "" {
		if f.Limit, err = strconv.Atoi(l); err != nil || f.Limit < 1 || f.Limit > 1000 {
			return f, fmt.Errorf("limit %q: 1-1000", l)
		}
	}
	return f, nil
}

// parseTZ reads tz, the browser's offset from UTC in minutes ("" is UTC).
func parseTZ(tz string) (*time.Location, error) {
	if tz == "" {
		return time.UTC, nil
	}
	m, err := strconv.Atoi(tz)
	if err != nil || m < -14*60 || m > 14*60 {
		return nil, fmt.Errorf("bad tz %q: minutes east of UTC", tz)
	}
	if m == 0 {
		return time.UTC, nil
	}
	return time.FixedZone(fmt.Sprintf("UTC%+03d:%02d", m/60, abs(m%60)), m*60), nil
}

func abs(n int) int { return max(n, -n) }

func (s *Server) apiList(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilter(r.URL.Query(), s.d.Now())
	if err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	p, err := s.d.Store.List(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// messageDoc is GET /api/messages/{id}: the store's record and what the
// stored body holds.
type messageDoc struct {
	*store.Message
	Body bodyDoc `json:"body"`
	// Headers are the message's header fields in order, decoded.
	Headers []mimeview.Field `json:"headers"`
	// Parts are the MIME leaves; Attachments those that are attachments.
	Parts       []partDoc `json:"parts"`
	Attachments []partDoc `json:"attachments"`
}

// bodyDoc says whether the body is kept, and what could not be read of it.
type bodyDoc struct {
	Kept     bool     `json:"kept"`
	Note     string   `json:"note,omitempty"`
	Problems []string `json:"problems,omitempty"`
}

func (s *Server) apiGet(w http.ResponseWriter, r *http.Request) {
	m, c, err := s.messageContent(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	doc := messageDoc{Message: m, Body: bodyDoc{Kept: c.Kept, Note: c.Note}, Headers: []mimeview.Field{},
		Parts: []partDoc{}, Attachments: []partDoc{}}
	if c.Kept {
		doc.Body.Problems = c.MIME.Problems
		doc.Headers = c.MIME.Header
		doc.Parts = partDocs(m.ID, c.MIME.Parts, "parts")
		doc.Attachments = partDocs(m.ID, c.MIME.Attachments(), "attachments")
	}
	writeJSON(w, http.StatusOK, doc)
}

func (s *Server) apiPart(w http.ResponseWriter, r *http.Request)       { s.servePart(w, r, false) }
func (s *Server) apiAttachment(w http.ResponseWriter, r *http.Request) { s.servePart(w, r, true) }

// apiRaw downloads the stored message, always as an attachment.
func (s *Server) apiRaw(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	body, size, err := s.d.Store.Raw(r.Context(), id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			jsonError(w, http.StatusNotFound, "no raw message for "+id+" (not stored, or pruned after store.keep_bodies)")
			return
		}
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "message/rfc822")
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": safeName(id) + ".eml"}))
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	if _, err := io.Copy(w, body); err != nil {
		s.log.Warn("raw message download failed", "id", id, "err", err)
	}
}

func safeName(id string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, id)
}

func (s *Server) apiRetry(w http.ResponseWriter, r *http.Request) {
	n, err := s.retry(r, r.PathValue("id"))
	if err != nil {
		s.queueError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"retried": n})
}

func (s *Server) apiDelete(w http.ResponseWriter, r *http.Request) {
	if err := s.remove(r, r.PathValue("id")); err != nil {
		s.queueError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"deleted": true})
}

var errNoQueue = errors.New("the queue is not available here")

func (s *Server) retry(r *http.Request, id string) (int, error) {
	if s.d.Queue == nil {
		return 0, errNoQueue
	}
	n, err := s.d.Queue.Retry(r.Context(), id)
	if err == nil {
		s.log.Info("retry requested in the web UI", "id", id, "messages", n, "by", s.who(r))
	}
	return n, err
}

func (s *Server) remove(r *http.Request, id string) error {
	if s.d.Queue == nil {
		return errNoQueue
	}
	if id == "" {
		return queue.ErrNotFound
	}
	err := s.d.Queue.Delete(r.Context(), id)
	if err == nil {
		s.log.Info("message deleted in the web UI", "id", id, "by", s.who(r))
	}
	return err
}

// who names the logged-in user for the log.
func (s *Server) who(r *http.Request) string {
	if u, _, ok := r.BasicAuth(); ok && s.ui != nil {
		return u
	}
	return "loopback"
}

func (s *Server) queueError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, errNoQueue):
		jsonError(w, http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, queue.ErrNotFound):
		jsonError(w, http.StatusNotFound, "not in the queue (already delivered, failed or deleted)")
	default:
		jsonError(w, http.StatusConflict, err.Error())
	}
}

// queueListing is GET /api/queue.
type queueListing struct {
	Stats queue.Stats  `json:"stats"`
	Items []queue.Item `json:"items"`
}

func (s *Server) apiQueue(w http.ResponseWriter, r *http.Request) {
	if s.d.Queue == nil {
		s.queueError(w, errNoQueue)
		return
	}
	items := s.d.Queue.List()
	if items == nil {
		items = []queue.Item{}
	}
	writeJSON(w, http.StatusOK, queueListing{Stats: s.d.Queue.Stats(), Items: items})
}

func (s *Server) apiSenders(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.senders.report(false))
}

func (s *Server) apiSendersCheck(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusAccepted, s.senders.report(true))
}

// StatsReport is GET /api/stats: the store's counters for the window plus
// what only the running relay knows.
type StatsReport struct {
	*store.Stats
	// QueueNow is the queue depth per lane now; QueueDepth per lane at the
	// end of each bucket, worked back from now through the buckets'
	// received and final counts.
	QueueNow   map[string]int   `json:"queue_now"`
	QueueDepth map[string][]int `json:"queue_depth"`
	Store      store.Health     `json:"store"`
}

// windows are the dashboard's time windows and their bucket sizes.
var windows = []struct {
	name   string
	window time.Duration
	step   time.Duration
}{{"1h", time.Hour, time.Minute}, {"6h", 6 * time.Hour, 5 * time.Minute}, {"24h", 24 * time.Hour, 15 * time.Minute},
	{"7d", 7 * 24 * time.Hour, 2 * time.Hour}, {"30d", 30 * 24 * time.Hour, 6 * time.Hour}}

// defaultWindow fits a fresh install: an hour by the minute.
const defaultWindow = "1h"

func (s *Server) stats(r *http.Request, window string) (*StatsReport, error) {
	win, step := time.Hour, time.Minute
	for _, w := range windows {
		if w.name == window {
			win, step = w.window, w.step
		}
	}
	now := s.d.Now()
	st, err := s.d.Store.Stats(r.Context(), now.Add(-win), now, step)
	if err != nil {
		return nil, err
	}
	rep := &StatsReport{Stats: st, QueueNow: map[string]int{}, QueueDepth: map[string][]int{}}
	if s.d.QueueDepth != nil {
		rep.QueueNow = s.d.QueueDepth()
		for lane, n := range rep.QueueNow {
			series := make([]int, len(st.Buckets))
			depth := n
			for i := len(st.Buckets) - 1; i >= 0; i-- {
				series[i] = max(depth, 0)
				depth -= st.Buckets[i].Received[lane] - st.Buckets[i].Final[lane]
			}
			rep.QueueDepth[lane] = series
		}
	}
	rep.Store = s.d.Store.Health()
	return rep, nil
}

func (s *Server) apiStats(w http.ResponseWriter, r *http.Request) {
	window := r.URL.Query().Get("window")
	if window == "" {
		window = defaultWindow
	}
	valid := false
	for _, w := range windows {
		valid = valid || w.name == window
	}
	if !valid {
		jsonError(w, http.StatusBadRequest, "window is one of 1h, 6h, 24h, 7d, 30d")
		return
	}
	rep, err := s.stats(r, window)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// apiFunnel is GET /api/funnel?days=7&tz=: the delivery funnel by day and
// lane (days 1-400, tz the offset from UTC in minutes).
func (s *Server) apiFunnel(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	days := 7
	if v := q.Get("days"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 400 {
			jsonError(w, http.StatusBadRequest, "days: 1-400")
			return
		}
		days = n
	}
	loc, err := parseTZ(q.Get("tz"))
	if err != nil {
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	now := s.d.Now()
	f, err := s.d.Store.Funnel(r.Context(), now.AddDate(0, 0, -(days-1)), now, loc)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, f)
}

// fail answers a store error: 404 for an unknown message, else 500 (logged).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		jsonError(w, http.StatusNotFound, "no such message")
		return
	case errors.Is(err, store.ErrBadFilter):
		jsonError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.log.Error("traffic store query failed", "path", r.URL.Path, "err", err)
	jsonError(w, http.StatusInternalServerError, "internal error (see the relay's log)")
}
