package web

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/mjrelay/mjrelay/relay/queue"
)

// back redirects after a UI action to the page it came from.
func back(w http.ResponseWriter, r *http.Request, to, done string) {
	http.Redirect(w, r, to+"?done="+url.QueryEscape(done), http.StatusSeeOther)
}

func (s *Server) uiRetry(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := s.retry(r, id); err != nil {
		s.uiQueueError(w, r, err)
		return
	}
	back(w, r, returnTo(r, "/messages/"+url.PathEscape(id)), "retried")
}

func (s *Server) uiDelete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.remove(r, id); err != nil {
		s.uiQueueError(w, r, err)
		return
	}
	back(w, r, returnTo(r, "/messages/"+url.PathEscape(id)), "deleted")
}

func (s *Server) uiRetryAll(w http.ResponseWriter, r *http.Request) {
	if _, err := s.retry(r, ""); err != nil {
		s.uiQueueError(w, r, err)
		return
	}
	back(w, r, "/queue", "retried-all")
}

// returnTo is the form's "return" field when it names a local page.
func returnTo(r *http.Request, def string) string {
	if v := r.FormValue("return"); v == "/queue" {
		return v
	}
	return def
}

func (s *Server) uiQueueError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, errNoQueue):
		s.errorPage(w, r, http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, queue.ErrNotFound):
		s.errorPage(w, r, http.StatusNotFound, "The message is not in the queue any more (delivered, failed or deleted meanwhile).")
	default:
		s.errorPage(w, r, http.StatusConflict, err.Error())
	}
}
