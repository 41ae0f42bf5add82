package web

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/mjrelay/mjrelay/mailjet/webhook"
	"github.com/mjrelay/mjrelay/relay/store"
)

// mjEvent renders one event as Mailjet documents it (its event API): the
// common fields plus the event's own.
func mjEvent(event, customID string, messageID any, extra string) string {
	mid := fmt.Sprint(messageID)
	if s, ok := messageID.(string); ok {
		mid = `"` + s + `"`
	}
	e := fmt.Sprintf(`{"event":%q,"time":1430812195,"MessageID":%s,"Message_GUID":"1ab23cd4-0000-4000-8000-000000000001",`+
		`"email":"mr.x@client.example","mj_campaign_id":0,"mj_contact_id":0,"customcampaign":"","CustomID":%q,"Payload":""`,
		event, mid, customID)
	if extra != "" {
		e += "," + extra
	}
	return e + "}"
}

var mjExtra = map[string]string{
	"sent":    `"mj_message_id":"288230376151711744","smtp_reply":"sent (250 2.0.0 OK 1433333948 fa5si855896wjc.199 - gsmtp)"`,
	"open":    `"ip":"127.0.0.1","geo":"US","agent":"Mozilla/5.0"`,
	"click":   `"url":"https://odoo.example/my/invoices/42","ip":"127.0.0.1","geo":"FR","agent":"Mozilla/5.0"`,
	"bounce":  `"blocked":false,"hard_bounce":true,"error_related_to":"recipient","error":"user unknown","comment":"Host or domain name not found. Name service error for name=lbjsnrftlsiuvbsren.com type=A: Host not found"`,
	"blocked": `"error_related_to":"recipient","error":"user unknown"`,
	"spam":    `"source":"JMRPP"`,
	"unsub":   `"mj_list_id":1,"ip":"127.0.0.1","geo":"FR","agent":"Mozilla/5.0"`,
}

func TestWebhook(t *testing.T) {
	const mjID = 288230376151711744
	ev := func(event, customID string, id any) string { return mjEvent(event, customID, id, mjExtra[event]) }
	arr := func(evs ...string) string { return "[" + strings.Join(evs, ",") + "]" }
	tests := []struct {
		name  string
		body  func(id string) string
		code  int
		state store.State // the invoice's state afterwards ("sent" = unchanged)
		seen  int         // Mailjet events on the invoice
	}{
		{"sent", func(id string) string { return arr(ev("sent", id, mjID)) }, 200, "delivered", 1},
		{"open", func(id string) string { return arr(ev("open", id, mjID)) }, 200, "delivered", 1},
		{"click", func(id string) string { return arr(ev("click", id, mjID)) }, 200, "delivered", 1},
		{"bounce", func(id string) string { return arr(ev("bounce", id, mjID)) }, 200, "bounced", 1},
		{"blocked", func(id string) string { return arr(ev("blocked", id, mjID)) }, 200, "blocked", 1},
		{"spam", func(id string) string { return arr(ev("spam", id, mjID)) }, 200, "spam", 1},
		{"unsub", func(id string) string { return arr(ev("unsub", id, mjID)) }, 200, "unsub", 1},
		{"single object", func(id string) string { return ev("bounce", id, mjID) }, 200, "bounced", 1},
		{"version 2 grouping, mixed", func(id string) string {
			return arr(ev("sent", id, mjID), ev("open", id, mjID), ev("click", id, mjID), ev("spam", id, mjID))
		}, 200, "spam", 4},
		{"joined by MessageID", func(string) string { return arr(ev("bounce", "", mjID)) }, 200, "bounced", 1},
		{"MessageID as a string", func(string) string { return arr(ev("bounce", "", "288230376151711744")) }, 200, "bounced", 1},
		{"not our message", func(string) string {
			return strings.Replace(arr(ev("bounce", "someone-else", 99)), "000000000001", "000000000999", 1)
		}, 200, "sent", 0},
		{"joined by Message_GUID", func(string) string { return arr(ev("bounce", "someone-else", 99)) }, 200, "bounced", 1},
		{"unknown event name", func(id string) string { return arr(ev("teleport", id, mjID), ev("sent", id, mjID)) }, 200, "delivered", 1},
		{"missing ids", func(string) string { return `[{"event":"bounce","email":"mr.x@client.example"}]` }, 200, "sent", 0},
		{"wrong types", func(id string) string {
			return arr(`{"event":"bounce","time":"soon","MessageID":{"a":1},"CustomID":123,"email":false}`,
				`{"event":["sent"],"CustomID":"`+id+`"}`,
				`{"event":"sent","time":"1430812195","CustomID":"`+id+`","email":42,"hard_bounce":"yes"}`)
		}, 200, "delivered", 1},
		{"not objects", func(string) string { return `[1, "a", null, [], true]` }, 200, "sent", 0},
		{"bad JSON after a good event", func(id string) string { return `[` + ev("bounce", id, mjID) + `, {"event": "se` }, 200, "bounced", 1},
		{"not JSON", func(string) string { return "event=sent&CustomID=x" }, 200, "sent", 0},
		{"empty", func(string) string { return "" }, 200, "sent", 0},
		{"oversized event skipped, the next kept", func(id string) string {
			big := mjEvent("bounce", id, mjID, `"comment":"`+strings.Repeat("x", webhook.MaxEventBytes)+`"`)
			return arr(big, ev("open", id, mjID))
		}, 200, "delivered", 1},
		{"oversized single object", func(id string) string {
			return mjEvent("bounce", id, mjID, `"comment":"`+strings.Repeat("x", webhook.MaxEventBytes)+`"`)
		}, 200, "sent", 0},
		{"brackets and escapes in strings", func(id string) string {
			return arr(mjEvent("bounce", id, mjID, `"comment":"]}, {\"event\":\"sent\"} [{\\"`), ev("open", id, mjID))
		}, 200, "bounced", 2},
		{"empty array", func(string) string { return "[]" }, 200, "sent", 0},
		{"missing comma after a good event", func(id string) string { return "[" + ev("bounce", id, mjID) + " " + ev("sent", id, mjID) + "]" }, 200, "bounced", 1},
		{"huge", func(id string) string {
			return `[{"event":"bounce","CustomID":"` + id + `","comment":"` + strings.Repeat("x", maxWebhookBody+1024) + `"}]`
		}, 200, "sent", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, withWebhook(t), withoutMailjetEvents)
			id := e.smp.IDs["invoice"]
			w := e.do(t, "POST", "/webhooks/mailjet", strings.NewReader(tc.body(id)), auth("mailjet", hookPassword),
				from("203.0.113.5:443"), host("relay.example.com"), header("Content-Type", "application/json"))
			if w.Code != tc.code {
				t.Fatalf("%d %s, want %d", w.Code, w.Body, tc.code)
			}
			if err := e.store.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			m, err := e.store.Get(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if m.State != tc.state || len(m.Events) != tc.seen {
				t.Errorf("invoice: state %q with %d Mailjet events, want %q with %d", m.State, len(m.Events), tc.state, tc.seen)
			}
		})
	}
}

func TestWebhookAccess(t *testing.T) {
	body := "[" + mjEvent("sent", "x", 1, "") + "]"
	tests := []struct {
		name    string
		webhook bool
		method  string
		opts    []reqOpt
		want    int
	}{
		{"no credentials", true, "POST", nil, 401},
		{"wrong password", true, "POST", []reqOpt{auth("mailjet", "nope")}, 401},
		{"wrong user", true, "POST", []reqOpt{auth("admin", hookPassword)}, 401},
		{"UI credentials", true, "POST", []reqOpt{auth("admin", uiPassword)}, 401},
		{"right credentials", true, "POST", []reqOpt{auth("mailjet", hookPassword)}, 200},
		{"GET", true, "GET", []reqOpt{auth("mailjet", hookPassword)}, 405},
		{"not configured", false, "POST", []reqOpt{auth("mailjet", hookPassword)}, 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := []envOpt{withUsers(t)}
			if tc.webhook {
				opts = append(opts, withWebhook(t))
			}
			e := newEnv(t, opts...)
			w := e.do(t, tc.method, "/webhooks/mailjet", strings.NewReader(body),
				append([]reqOpt{from("203.0.113.5:443"), host("relay.example.com")}, tc.opts...)...)
			if w.Code != tc.want {
				t.Errorf("%d %s, want %d", w.Code, w.Body, tc.want)
			}
			if w.Code == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}

// TestWebhookMetrics: the webhook counts its requests and events in the
// metrics it is given, which /metrics serves.
func TestWebhookMetrics(t *testing.T) {
	e := newEnv(t, withWebhook(t))
	body := `[{"event":"sent","CustomID":"x","MessageID":1},{"event":"teleport","CustomID":"x"},{"event":"open"}]`
	if w := e.do(t, "POST", "/webhooks/mailjet", strings.NewReader(body), auth("mailjet", hookPassword)); w.Code != 200 {
		t.Fatalf("webhook: %d", w.Code)
	}
	if w := e.do(t, "POST", "/webhooks/mailjet", strings.NewReader(body), auth("mailjet", "wrong")); w.Code != 401 {
		t.Fatalf("webhook with a wrong password: %d", w.Code)
	}
	w := e.do(t, "GET", "/metrics", nil)
	if w.Code != 200 {
		t.Fatalf("%d", w.Code)
	}
	for _, line := range []string{
		`mjrelay_webhook_events_total{event="sent",result="accepted"} 1`,
		`mjrelay_webhook_events_total{event="unknown",result="unknown_event"} 1`,
		`mjrelay_webhook_events_total{event="open",result="no_id"} 1`,
		`mjrelay_webhook_requests_total{code="200"} 1`,
		`mjrelay_webhook_requests_total{code="401"} 1`,
	} {
		if !strings.Contains(w.Body.String(), line) {
			t.Errorf("metrics lack %s", line)
		}
	}
}
