package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/control"
	"github.com/mjrelay/mjrelay/relay/queue"
)

// TestQueueListShowsHeld: `mjrelay queue list` shows a held message as
// held, with why, in place of its next attempt and last error.
func TestQueueListShowsHeld(t *testing.T) {
	why := "Sender not checked yet: the Mailjet account state is not known"
	items := []queue.Item{
		{Envelope: queue.Envelope{ID: "HELD", Received: time.Now(), From: "bounce@example.com", To: []string{"a@x.org"}, Hold: why},
			State: queue.State{ID: "HELD"}},
		{Envelope: queue.Envelope{ID: "RELEASED", Received: time.Now(), From: "bounce@example.com", To: []string{"a@x.org"}, Hold: why},
			State: queue.State{ID: "RELEASED", Released: true, Attempts: 1, Next: time.Now().Add(time.Hour), LastError: "451 4.3.0 later"}},
	}
	var buf bytes.Buffer
	printQueue(&buf, control.Listing{Items: items})
	lines := strings.Split(buf.String(), "\n")
	if !strings.Contains(lines[0], "WHY HELD") {
		t.Errorf("header %q", lines[0])
	}
	if f := strings.Fields(lines[1]); f[0] != "HELD" || !strings.Contains(lines[1], " held ") || !strings.HasSuffix(lines[1], why) {
		t.Errorf("held line %q", lines[1])
	}
	if strings.Contains(lines[2], " held ") || strings.Contains(lines[2], why) || !strings.HasSuffix(lines[2], "451 4.3.0 later") {
		t.Errorf("released line %q", lines[2])
	}
}
