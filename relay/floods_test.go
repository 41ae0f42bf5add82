package relay_test

import (
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/relay"
	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// TestQueueFullRefusalsAreAggregated: while the relay refuses for want of
// space, every client still gets its 452, but the record (a traffic-log
// line and a store row each, taking more of the space) is the first
// refusal, then one event per interval with the count of those since.
func TestQueueFullRefusalsAreAggregated(t *testing.T) {
	e := newEnv(t, mjtest.StartTLS, func(c *config.Config) { c.Queue.MaxMessages = 2 })
	e.up.SetMailFault(mjtest.Fault{Code: 451, Enh: smtp.EnhancedCode{4, 3, 0}, Message: "later"}) // nothing leaves
	c := e.client()
	for i := 0; i < 2; i++ {
		if _, err := send(c, "a@example.com", []string{"b@example.org"}, testMessage("fills")); err != nil {
			t.Fatal(err)
		}
	}
	const refusals = 30
	var reply string
	for i := 0; i < refusals; i++ {
		err := c.Mail("a@example.com", nil)
		if !strings.HasPrefix(replyLine(err), "452 4.3.1 ") {
			t.Fatalf("MAIL %d with the queue full: %v", i, err)
		}
		reply = replyLine(err)
		c.Reset()
	}
	c.Quit()
	if got := queueFull(e); len(got) != 1 || got[0].Reply.String() != reply || got[0].Count > 1 {
		t.Fatalf("while refusing: %d queue_full records %+v; want the first only", len(got), got)
	}
	e.stop() // the end of the interval comes early
	got := queueFull(e)
	if len(got) != 2 || got[1].Count != refusals-1 || got[1].Reply.String() != reply || got[1].Stage != "mail" {
		t.Fatalf("%d queue_full records %+v; want the first and one standing for %d", len(got), got, refusals-1)
	}
}

func queueFull(e *env) []trafficlog.Event {
	var out []trafficlog.Event
	for _, ev := range e.traffic.Events(trafficlog.Refused) {
		if ev.Reason == "queue_full" {
			out = append(out, ev)
		}
	}
	return out
}

// TestConnectionChurnIsLoggedInAggregate: clients that connect and go
// without a word (port scans, health checks, TLS probes, each resetting
// the connection) make one log line, and one per interval with a count,
// not one each.
func TestConnectionChurnIsLoggedInAggregate(t *testing.T) {
	e := newEnv(t, mjtest.StartTLS, nil)
	e.stop()
	logs, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := relay.Start(e.cfg, relay.Options{Traffic: e.traffic, UpstreamRoots: e.up.CAPool(),
		Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	e.r = r
	const churn = 100
	for i := 0; i < churn; i++ {
		for _, a := range r.SMTPAddrs() {
			c, err := net.Dial("tcp", a.String())
			if err != nil {
				t.Fatal(err)
			}
			c.(*net.TCPConn).SetLinger(0) // close with a reset, unread greeting and all
			c.Close()
		}
	}
	// Under load the server may reach the reset connections only after a
	// while: wait for its first line about them before stopping it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(logs.Name())
		if strings.Contains(string(b), "error handling") || strings.Contains(string(b), "client error") || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.stop()
	logged, _ := os.ReadFile(logs.Name())
	var lines, counted int
	for _, l := range strings.Split(strings.TrimSpace(string(logged)), "\n") {
		var rec struct {
			Level, Msg, Detail string
			Count              int
		}
		json.Unmarshal([]byte(l), &rec)
		if rec.Level != "WARN" || !strings.Contains(l, "error handling") && !strings.Contains(rec.Msg, "client error") {
			continue
		}
		lines++
		counted += max(rec.Count, 1)
	}
	if lines == 0 || lines > 2 || counted > 2*churn {
		t.Fatalf("%d log lines about clients' connections standing for %d; want the first and at most one summary\n%s",
			lines, counted, logged)
	}
}
