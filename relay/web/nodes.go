package web

import (
	"net/http"
	"time"
)

// Node is one node of a cluster as the nodes page and GET /api/nodes
// show it: its heartbeat, whether it is alive (its last heartbeat within
// the lease), what it holds (claims now; messages held in its local spool
// while PostgreSQL was away) and what it reports (addresses).
type Node struct {
	Node      string         `json:"node"`
	Instance  string         `json:"instance"`
	Started   time.Time      `json:"started"`
	Heartbeat time.Time      `json:"heartbeat"`
	Stopped   *time.Time     `json:"stopped,omitempty"`
	Alive     bool           `json:"alive"`
	Holds     int            `json:"holds"`
	Info      map[string]any `json:"info"`
}

// Age is how long ago the node's last heartbeat was, in whole seconds.
func (n Node) Age() time.Duration { return time.Since(n.Heartbeat).Truncate(time.Second) }

// nodesData is the nodes page's data.
type nodesData struct {
	Nodes    []Node
	Degraded string
	Err      string
}

func (s *Server) nodesPage(w http.ResponseWriter, r *http.Request) {
	if s.d.Nodes == nil {
		s.errorPage(w, r, http.StatusNotFound, "This relay is not a node of a cluster (cluster.postgres_url is not set).")
		return
	}
	d := nodesData{}
	var err error
	if d.Nodes, err = s.d.Nodes(r.Context()); err != nil {
		d.Err = err.Error()
	}
	d.Degraded = s.degraded()
	s.render(w, r, http.StatusOK, "nodes", "Nodes", d)
}

func (s *Server) apiNodes(w http.ResponseWriter, r *http.Request) {
	if s.d.Nodes == nil {
		jsonError(w, http.StatusNotFound, "not a cluster node (cluster.postgres_url is not set)")
		return
	}
	nodes, err := s.d.Nodes(r.Context())
	if err != nil {
		jsonError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	if nodes == nil {
		nodes = []Node{}
	}
	out := struct {
		Nodes    []Node `json:"nodes"`
		Degraded string `json:"degraded,omitempty"`
	}{Nodes: nodes, Degraded: s.degraded()}
	writeJSON(w, http.StatusOK, out)
}
