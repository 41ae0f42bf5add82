package control

import (
	"context"
	"encoding/json"
	"net/http"
)

// Process is the running relay's own actions: a reload of its
// configuration, a restart into a new process, and, for that new process,
// the handover of the queue. nil: those endpoints answer 404.
type Process interface {
	Reload(ctx context.Context) (Reloaded, error)
	Restart(ctx context.Context) (Restarted, error)
	HandOver(ctx context.Context, req HandoverRequest) (HandoverReply, error)
}

// Reloaded is what a reload changed: the keys applied, and the keys that
// need a restart (they kept their value).
type Reloaded struct {
	Applied     []string `json:"applied"`
	NeedRestart []string `json:"needs_restart"`
}

// Restarted names the process that took over.
type Restarted struct {
	PID int `json:"pid"`
}

// HandoverRequest is a new process asking its predecessor for the queue:
// its pid, and the unix socket where it takes the messages the
// predecessor's sessions accept meanwhile.
type HandoverRequest struct {
	PID    int    `json:"pid"`
	Socket string `json:"socket"`
}

// HandoverReply is the predecessor's answer, once it has released the
// queue: its pid, and how many deliveries it cut short (they may be sent
// twice).
type HandoverReply struct {
	PID      int `json:"pid"`
	CutShort int `json:"cut_short"`
}

func processRoutes(mux *http.ServeMux, p Process) {
	mux.HandleFunc("POST /reload", func(w http.ResponseWriter, r *http.Request) {
		res, err := p.Reload(r.Context())
		reply(w, res, err)
	})
	mux.HandleFunc("POST /restart", func(w http.ResponseWriter, r *http.Request) {
		res, err := p.Restart(r.Context())
		reply(w, res, err)
	})
	mux.HandleFunc("POST /handover", func(w http.ResponseWriter, r *http.Request) {
		var req HandoverRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		res, err := p.HandOver(r.Context(), req)
		reply(w, res, err)
	})
}

// Reload asks the running relay to read its configuration again.
func (c *Client) Reload(ctx context.Context) (Reloaded, error) {
	var res Reloaded
	err := c.doSlow(ctx, http.MethodPost, "/reload", nil, &res)
	return res, err
}

// Restart asks the running relay to hand over to a new process started
// from the binary on disk, and returns once that one is ready.
func (c *Client) Restart(ctx context.Context) (Restarted, error) {
	var res Restarted
	err := c.doSlow(ctx, http.MethodPost, "/restart", nil, &res)
	return res, err
}

// HandOver asks the running relay for its queue (a new process does).
func (c *Client) HandOver(ctx context.Context, req HandoverRequest) (HandoverReply, error) {
	var res HandoverReply
	err := c.doSlow(ctx, http.MethodPost, "/handover", req, &res)
	return res, err
}
