package forward

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/mjrelay/mjrelay/relay/queue"
)

// maxEnvelope bounds an envelope's JSON (a thousand recipients are ~50 KB).
const maxEnvelope = 16 << 20

// Server answers a Client from q.
type Server struct {
	q   queue.Queue
	srv *http.Server
}

// NewServer answers from q (usually a queue.Switch).
func NewServer(q queue.Queue) *Server {
	s := &Server{q: q}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /admit", s.admit)
	mux.HandleFunc("POST /put", s.put)
	mux.HandleFunc("GET /get", s.get)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return s
}

// Serve answers on l until Close.
func (s *Server) Serve(l net.Listener) error {
	if err := s.srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Close stops answering (calls in progress are cut short).
func (s *Server) Close() error { return s.srv.Close() }

func (s *Server) admit(w http.ResponseWriter, r *http.Request) {
	size, _ := strconv.ParseInt(r.URL.Query().Get("size"), 10, 64)
	reply(w, nil, s.q.Admit(size))
}

func (s *Server) put(w http.ResponseWriter, r *http.Request) {
	var head [4]byte
	if _, err := io.ReadFull(r.Body, head[:]); err != nil {
		http.Error(w, "forward: "+err.Error(), http.StatusBadRequest)
		return
	}
	n := binary.BigEndian.Uint32(head[:])
	if n > maxEnvelope {
		http.Error(w, "forward: envelope too large", http.StatusBadRequest)
		return
	}
	ej := make([]byte, n)
	if _, err := io.ReadFull(r.Body, ej); err != nil {
		http.Error(w, "forward: "+err.Error(), http.StatusBadRequest)
		return
	}
	var env queue.Envelope
	if err := json.Unmarshal(ej, &env); err != nil {
		http.Error(w, "forward: "+err.Error(), http.StatusBadRequest)
		return
	}
	// Content-Length is the envelope and the message, as the client sent.
	var msg []byte
	var err error
	if r.ContentLength >= 0 {
		msg = make([]byte, max(r.ContentLength-4-int64(n), 0))
		_, err = io.ReadFull(r.Body, msg)
	} else {
		msg, err = io.ReadAll(r.Body)
	}
	if err != nil {
		http.Error(w, "forward: "+err.Error(), http.StatusBadRequest)
		return
	}
	err = s.q.Put(r.Context(), &env, msg)
	reply(w, map[string]int64{"size": env.Size}, err)
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	it, err := s.q.Get(r.URL.Query().Get("id"))
	reply(w, it, err)
}

func reply(w http.ResponseWriter, v any, err error) {
	if err != nil {
		status := http.StatusInternalServerError
		for _, s := range statusOf {
			if errors.Is(err, s.err) {
				status = s.status
				break
			}
		}
		http.Error(w, err.Error(), status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
