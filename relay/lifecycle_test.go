package relay_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/relay"
	"github.com/mjrelay/mjrelay/relay/config"
)

// TestFailedComponentIsReported: a component that fails while the relay
// runs (here the control socket, whose path is taken by a directory) is
// reported by Err and /readyz, and mail still goes through.
func TestFailedComponentIsReported(t *testing.T) {
	e := newEnv(t, mjtest.StartTLS, func(c *config.Config) {
		c.HTTP.Listen = "127.0.0.1:0"
		if err := os.MkdirAll(filepath.Join(c.ControlSocket(), "taken"), 0o700); err != nil {
			t.Fatal(err)
		}
	})
	e.waitFor("the failure to be reported", func() bool { return e.r.Err() != nil })
	if err := e.r.Err(); !strings.HasPrefix(err.Error(), "control socket: ") {
		t.Errorf("Err = %v", err)
	}
	readyz := "http://" + e.r.HTTPAddr().String() + "/readyz"
	resp, err := http.Get(readyz)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "control socket") {
		t.Errorf("/readyz: %d %s", resp.StatusCode, body)
	}

	c := e.client()
	if _, err := send(c, "bounce@example.com", []string{"client@example.org"}, testMessage("still-relaying")); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	e.waitDelivered(1)

	e.stop()
	if _, err := http.Get(readyz); err == nil {
		t.Error("HTTP still answers after Shutdown")
	}
}

// TestFailedStartReleasesWhatItOpened: when a listener cannot be bound,
// Start closes what it had opened (the queue's lock among them), so the
// next start with the same data_dir succeeds.
func TestFailedStartReleasesWhatItOpened(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	e := newEnv(t, mjtest.StartTLS, nil)
	cfg := *e.cfg
	e.stop()

	cfg.HTTP.Listen = busy.Addr().String()
	if r, err := relay.Start(&cfg, relay.Options{UpstreamRoots: e.up.CAPool()}); err == nil {
		r.Shutdown(context.Background())
		t.Fatal("started with its HTTP address taken")
	}
	cfg.HTTP.Listen = "127.0.0.1:0"
	r, err := relay.Start(&cfg, relay.Options{UpstreamRoots: e.up.CAPool()})
	if err != nil {
		t.Fatalf("the start after a failed one: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}
