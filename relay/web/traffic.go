package web

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/mjrelay/mjrelay/relay/store"
)

type messagesData struct {
	F      url.Values
	States []store.State
	// Reasons are the reason labels of the last 7 days, to filter by.
	Reasons []string
	Page    store.Page
	NextURL string
	// LiveURL is polled for new rows (on the first page only).
	LiveURL string
	Every   int // seconds between polls
	Err     string
}

func (s *Server) messagesPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := messagesData{F: q, States: store.States, Every: s.pollSeconds()}
	d.Page.Messages = []store.Summary{}
	if f, err := parseFilter(q, s.d.Now()); err != nil {
		d.Err = err.Error()
	} else if d.Page, err = s.d.Store.List(r.Context(), f); err != nil {
		d.Err = err.Error()
		if !errors.Is(err, store.ErrBadFilter) {
			s.log.Error("traffic list failed", "err", err)
			d.Err = "The traffic store could not be read; see the relay's log."
		}
	}
	if d.Page.Next != "" {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("cursor", d.Page.Next)
		d.NextURL = "/messages?" + nq.Encode()
	}
	if q.Get("cursor") == "" && d.Err == "" {
		d.LiveURL = liveURL("/messages", q)
	}
	if q.Get("fragment") != "live" {
		d.Reasons = s.reasons(r, q.Get("reason"))
	}
	s.render(w, r, http.StatusOK, "messages", "Traffic", d)
}

// reasons lists the reason labels of the last 7 days' failures and
// deferrals, most frequent first (read at most once a minute), with the
// one selected.
func (s *Server) reasons(r *http.Request, selected string) []string {
	list, err := s.reasonList.get(s.d.Now(), func(now time.Time) ([]string, error) {
		st, err := s.d.Store.Stats(r.Context(), now.Add(-7*24*time.Hour), now, 24*time.Hour)
		if err != nil {
			return nil, err
		}
		var out []string
		for _, rc := range append(append([]store.ReasonCount{}, st.Failures...), st.Deferrals...) {
			if rc.Reason != "" && !slices.Contains(out, rc.Reason) {
				out = append(out, rc.Reason)
			}
		}
		return out, nil
	})
	if err != nil {
		s.log.Warn("reading the reasons to filter by failed", "err", err)
	}
	list = slices.Clone(list)
	if selected != "" && !slices.Contains(list, selected) {
		list = append(list, selected)
	}
	return list
}
