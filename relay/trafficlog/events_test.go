package trafficlog_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

var env = queue.Envelope{ID: "019ab0000000aaaa00000001", Received: time.Unix(1700000000, 0), From: "bounce@example.com",
	To: []string{"a@example.org", "b@example.org"}, User: "odoo", Client: "192.0.2.1:4000", Helo: "odoo.example",
	HeaderFrom: "john@example.com", Subject: "Invoice 42", MessageID: "<42@odoo.example>", Size: 2048,
	Class: "bulk", ClassRule: "list-unsubscribe-post"}

// TestMessageEventsCarryTheEnvelope: every event about a queued message,
// whoever records it, carries the same envelope fields (the offline queue
// delete used to leave out class, rule, user, client, header From, size).
func TestMessageEventsCarryTheEnvelope(t *testing.T) {
	try := trafficlog.Try{Attempt: 2, To: []string{"b@example.org"}, Transport: "smtp", Upstream: "in-v3.mailjet.com:587",
		Reply: mailjet.Reply{Code: 451, Enhanced: "4.3.0", Text: "later"}}
	tests := []struct {
		kind trafficlog.Kind
		ev   trafficlog.Event
	}{
		{trafficlog.Received, trafficlog.NewReceived(env, true, "", nil)},
		{trafficlog.Attempt, trafficlog.NewAttempt(env, try)},
		{trafficlog.Delivered, trafficlog.NewDelivered(env, try)},
		{trafficlog.Sandboxed, trafficlog.NewSandboxed(env, try)},
		{trafficlog.Failed, trafficlog.NewFailed(env, try)},
		{trafficlog.Deferred, trafficlog.NewDeferred(env, try)},
		{trafficlog.Deleted, trafficlog.NewDeleted(env, "deleted by an administrator")},
	}
	for _, tc := range tests {
		e := tc.ev
		if e.Event != tc.kind {
			t.Errorf("%s: kind %q", tc.kind, e.Event)
		}
		got := []any{e.ID, e.Client, e.User, e.Helo, e.From, e.HeaderFrom, e.Subject, e.MessageID, e.Size, e.Class, e.ClassRule}
		want := []any{env.ID, env.Client, env.User, env.Helo, env.From, env.HeaderFrom, env.Subject, env.MessageID, env.Size, env.Class, env.ClassRule}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: envelope fields %v, want %v", tc.kind, got, want)
		}
	}
}

// TestEventJSON: replies are written as one line, as before they had a
// structure, so the traffic log's format does not change.
func TestEventJSON(t *testing.T) {
	e := trafficlog.NewAttempt(env, trafficlog.Try{Attempt: 1, Transport: "smtp", Reply: mailjet.ParseReply("550 5.1.1 No such user"),
		Rcpts: trafficlog.RcptResults([]mailjet.RcptResult{{Rcpt: "a@example.org", Status: mailjet.PermFail, Reply: mailjet.ParseReply("550 5.1.1 No such user")}})})
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"event":"attempt"`, `"reply":"550 5.1.1 No such user"`, `"rcpts":[{"rcpt":"a@example.org","status":"permanent","reply":"550 5.1.1 No such user"}]`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
	var back trafficlog.Event
	if err := json.Unmarshal(b, &back); err != nil || back.Reply.Code != 550 || back.Reply.Enhanced != "5.1.1" || back.Event != trafficlog.Attempt {
		t.Fatalf("read back %+v, %v", back, err)
	}
	if b, _ := json.Marshal(trafficlog.NewDeleted(env, "x")); strings.Contains(string(b), `"reply"`) {
		t.Errorf("an event without a reply writes one: %s", b)
	}
}
