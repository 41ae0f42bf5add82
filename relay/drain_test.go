package relay_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/relay/config"
)

// TestReadyzFalseWhileDraining: /readyz turns false as soon as the relay
// starts draining (a load balancer then sends new clients elsewhere), while
// an open session still finishes its transaction.
func TestReadyzFalseWhileDraining(t *testing.T) {
	e := newEnv(t, mjtest.StartTLS, func(c *config.Config) { c.HTTP.Listen = "127.0.0.1:0" })
	readyz := func() (int, string) {
		resp, err := http.Get("http://" + e.r.HTTPAddr().String() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := readyz(); code != http.StatusOK {
		t.Fatalf("/readyz before: %d %s", code, body)
	}
	c := e.client()
	if err := c.Mail("bounce@example.com", nil); err != nil { // a transaction is open
		t.Fatal(err)
	}
	r := e.r
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		stopped <- r.Shutdown(ctx)
	}()
	e.waitFor("/readyz to say draining", func() bool {
		code, body := readyz()
		return code == http.StatusServiceUnavailable && strings.Contains(body, "draining")
	})
	if err := c.Rcpt("client@example.org", nil); err != nil {
		t.Fatalf("the open session while draining: %v", err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(testMessage("while-draining")))
	if err := w.Close(); err != nil {
		t.Fatalf("the message sent while draining: %v", err)
	}
	c.Quit()
	if err := <-stopped; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	e.r = nil
}
