package web

import (
	"strings"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/queue"
)

// TestQueuePageShowsHeld: a held message says so, and why, instead of a
// next attempt and a last error; a released one is shown as any other.
func TestQueuePageShowsHeld(t *testing.T) {
	e := newEnv(t)
	why := "Sender not checked yet: the Mailjet account state is not known"
	for id, released := range map[string]bool{"held1": false, "released1": true} {
		e.queue.items[id] = queue.Item{
			Envelope: queue.Envelope{ID: id, Received: t0, From: "bounce@acme.example", To: []string{"a@client.example"},
				Subject: "Subject " + id, Class: "transactional", Hold: why},
			State: queue.State{ID: id, Released: released, Next: t0.Add(time.Hour), LastError: "421 4.7.0 later " + id}}
	}
	body := e.do(t, "GET", "/queue", nil).Body.String()
	row := func(id string) string {
		i := strings.Index(body, "Subject "+id)
		if i < 0 {
			t.Fatalf("no row for %s", id)
		}
		end := strings.Index(body[i:], "</tr>")
		if end < 0 {
			t.Fatalf("row for %s does not end", id)
		}
		return body[i : i+end]
	}
	if r := row("held1"); !strings.Contains(r, ">held<") || !strings.Contains(r, why) || strings.Contains(r, "later held1") {
		t.Errorf("held row: %s", r)
	}
	if r := row("released1"); strings.Contains(r, ">held<") || strings.Contains(r, why) || !strings.Contains(r, "later released1") {
		t.Errorf("released row: %s", r)
	}
}
