// Package control lets `mjrelay queue` act on a running server's queue: a
// small JSON API over a unix socket in data_dir (mode 0600, so only the
// relay's own user can use it). When no server runs, the command opens the
// queue itself instead (Offline); the embedded queue's lock file makes the
// two exclusive. Both work on a queue.Queue.
package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/mjrelay/mjrelay/relay/queue"
)

// Queue is what the control API acts on.
type Queue interface {
	List() []queue.Item
	Stats() queue.Stats
	// Retry makes a message (or all, with id "") due now; it returns how many.
	Retry(ctx context.Context, id string) (int, error)
	Delete(ctx context.Context, id string) error
}

// Listing is the answer to GET /queue.
type Listing struct {
	Stats queue.Stats  `json:"stats"`
	Items []queue.Item `json:"items"`
}

// Handler serves the control API: the queue actions on q, and the
// process's own actions on p (nil: none).
func Handler(q Queue, p Process) http.Handler {
	mux := http.NewServeMux()
	if p != nil {
		processRoutes(mux, p)
	}
	mux.HandleFunc("GET /queue", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, Listing{Stats: q.Stats(), Items: q.List()})
	})
	mux.HandleFunc("POST /queue/retry", func(w http.ResponseWriter, r *http.Request) {
		n, err := q.Retry(r.Context(), r.URL.Query().Get("id"))
		reply(w, map[string]int{"retried": n}, err)
	})
	mux.HandleFunc("POST /queue/delete", func(w http.ResponseWriter, r *http.Request) {
		err := q.Delete(r.Context(), r.URL.Query().Get("id"))
		reply(w, map[string]bool{"deleted": err == nil}, err)
	})
	return mux
}

func reply(w http.ResponseWriter, v any, err error) {
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, v)
	case errors.Is(err, queue.ErrNotFound):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
	default:
		writeJSON(w, http.StatusConflict, map[string]string{"error": err.Error()})
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// Client talks to a running server's control socket.
type Client struct {
	hc *http.Client
	// slow has no time limit of its own (a restart waits for the new
	// process): the caller's context bounds it.
	slow *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &Client{hc: &http.Client{Timeout: 30 * time.Second, Transport: tr}, slow: &http.Client{Transport: tr}}
}

// List returns the queue.
func (c *Client) List(ctx context.Context) (Listing, error) {
	var l Listing
	err := c.do(ctx, http.MethodGet, "/queue", &l)
	return l, err
}

// Retry asks for an immediate retry of id ("" = all).
func (c *Client) Retry(ctx context.Context, id string) (int, error) {
	var out map[string]int
	err := c.do(ctx, http.MethodPost, "/queue/retry?"+idQuery(id), &out)
	return out["retried"], err
}

// Delete removes id from the queue.
func (c *Client) Delete(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodPost, "/queue/delete?"+idQuery(id), nil)
}

// idQuery is the query string naming id, whatever characters it holds.
func idQuery(id string) string { return url.Values{"id": {id}}.Encode() }

func (c *Client) do(ctx context.Context, method, path string, out any) error {
	return c.call(ctx, c.hc, method, path, nil, out)
}

func (c *Client) doSlow(ctx context.Context, method, path string, in, out any) error {
	return c.call(ctx, c.slow, method, path, in, out)
}

func (c *Client) call(ctx context.Context, hc *http.Client, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://mjrelay"+path, body)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if resp.StatusCode != http.StatusOK {
		var e map[string]string
		if json.Unmarshal(got, &e) != nil || e["error"] == "" {
			return fmt.Errorf("the relay answered %s", resp.Status)
		}
		return fmt.Errorf("%s", e["error"])
	}
	if out != nil {
		return json.Unmarshal(got, out)
	}
	return nil
}
