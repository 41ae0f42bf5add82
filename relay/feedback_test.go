package relay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/odoo/odootest"
	"github.com/mjrelay/mjrelay/relay/store"
)

const (
	odooKey     = "odoo-api-key-7f3c9a1e5b"
	hookUser    = "mailjet"
	hookPass    = "webhook-password"
	odooDB      = "prod"
	odooLogin   = "relay@example.com"
	bounceAlias = "bounce@example.com"
)

// feedbackEnv is a relay reporting to an Odoo stand-in.
type feedbackEnv struct {
	*env
	odoo *odootest.Server
}

func newFeedbackEnv(t *testing.T, mutate func(*config.Config)) *feedbackEnv {
	od := odootest.Start(odooDB, odooLogin, odooKey)
	t.Cleanup(od.Close)
	hash, _ := bcrypt.GenerateFromPassword([]byte(hookPass), bcrypt.MinCost)
	e := newEnv(t, mjtest.StartTLS, func(c *config.Config) {
		c.HTTP.Listen = "127.0.0.1:0"
		c.Webhooks.MailjetUser, c.Webhooks.MailjetPasswordHash = hookUser, config.Secret(hash)
		c.Odoo.URL, c.Odoo.DB, c.Odoo.Login, c.Odoo.APIKey = od.URL(), odooDB, odooLogin, odooKey
		c.Odoo.BounceAddress = bounceAlias
		if mutate != nil {
			mutate(c)
		}
	})
	return &feedbackEnv{env: e, odoo: od}
}

// mail sends one message (its Message-Id known to Odoo) and returns its
// queue id.
func (f *feedbackEnv) mail(to []string, subject string, extra string) string {
	f.t.Helper()
	msgID := "<" + subject + ".1700000000.5-openerp-7-res.partner@odoo.test>"
	f.odoo.AddMessage(msgID)
	c := f.client()
	defer c.Close()
	msg := "From: John <john@example.com>\r\nTo: " + strings.Join(to, ", ") + "\r\nSubject: " + subject +
		"\r\nMessage-Id: " + msgID + "\r\n" + extra + "\r\nHello.\r\n"
	reply, err := send(c, bounceAlias, to, msg)
	if err != nil {
		f.t.Fatal(err)
	}
	return queueID(reply)
}

// post sends a webhook payload and returns the status code.
func (f *feedbackEnv) post(events []map[string]any) int {
	f.t.Helper()
	body, _ := json.Marshal(events)
	req, _ := http.NewRequest(http.MethodPost, "http://"+f.r.HTTPAddr().String()+"/webhooks/mailjet", bytes.NewReader(body))
	req.SetBasicAuth(hookUser, hookPass)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

var mjSeq int64 = 13792286917004336

// mjEvent is one event in Mailjet's documented shape (mailjet.md §5).
func mjEvent(kind, id, email string, extra map[string]any) map[string]any {
	mjSeq++
	ev := map[string]any{"event": kind, "time": time.Now().Unix(), "MessageID": mjSeq, "Message_GUID": fmt.Sprintf("1ab23cd4-0000-0000-0000-%012d", mjSeq%1e12),
		"email": email, "mj_campaign_id": 0, "mj_contact_id": 0, "customcampaign": "", "CustomID": id, "Payload": ""}
	for k, v := range extra {
		ev[k] = v
	}
	return ev
}

func bounceEv(id, email string, hard bool, related, errText, comment string) map[string]any {
	return mjEvent("bounce", id, email, map[string]any{"blocked": false, "hard_bounce": hard, "error_related_to": related, "error": errText, "comment": comment})
}

func blockedEv(id, email, related, errText string) map[string]any {
	return mjEvent("blocked", id, email, map[string]any{"error_related_to": related, "error": errText})
}

// settled waits until the outbox is empty and Odoo has n bounces.
func (f *feedbackEnv) settled(what string, cond func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := f.r.Feedback().Status(context.Background())
		if st.Pending == 0 && cond() {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("timed out waiting for %s (pending %d, problem %q, bounces %d, rejected %+v)", what, st.Pending, st.Problem,
				len(f.odoo.Bounces()), f.odoo.Rejected())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func statusByRcpt(bs []odootest.Bounce) map[string]string {
	out := map[string]string{}
	for _, b := range bs {
		out[b.Recipient] += b.Status
	}
	return out
}

func TestOdooFeedbackEndToEnd(t *testing.T) {
	f := newFeedbackEnv(t, nil)
	f.up.SetRcptFault("reject@example.org", mjtest.Fault{Code: 550, Enh: smtp.EnhancedCode{5, 1, 1}, Message: "<reject@example.org>: Recipient address rejected"})
	unsubURL := f.odoo.URL() + "/mailing/3/unsubscribe_oneclick?document_id=9&email=unsub%40example.org&hash_token=tok3"
	m1 := f.mail([]string{"hard@example.org"}, "m1", "")
	m2 := f.mail([]string{"soft@example.org"}, "m2", "")
	m3 := f.mail([]string{"b-rcpt@example.org", "b-domain@example.org", "b-pre@example.org"}, "m3", "")
	m4 := f.mail([]string{"c-content@example.org", "c-spam@example.org", "c-system@example.org", "c-dup@example.org"}, "m4", "")
	m5 := f.mail([]string{"unsub@example.org", "spam@example.org"}, "m5",
		"List-Unsubscribe: <"+unsubURL+">\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nPrecedence: list\r\n")
	m6 := f.mail([]string{"unsub2@example.org"}, "m6", "")
	f.mail([]string{"reject@example.org"}, "m7", "")
	// An unsubscribe URL Odoo will refuse (no token): the report fails for good.
	m8 := f.mail([]string{"unsub3@example.org"}, "m8", "List-Unsubscribe: <"+f.odoo.URL()+"/mailing/4/unsubscribe_oneclick?document_id=1>\r\n"+
		"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
	f.waitDelivered(7)

	events := []map[string]any{
		bounceEv(m1, "hard@example.org", true, "recipient", "user unknown", "550 5.1.1 <hard@example.org>: Recipient address rejected: User unknown"),
		bounceEv(m2, "soft@example.org", false, "recipient", "quota exceeded", "452 4.2.2 Mailbox full"),
		blockedEv(m3, "b-rcpt@example.org", "recipient", "user unknown"),
		blockedEv(m3, "b-domain@example.org", "domain", "no mail host"),
		blockedEv(m3, "b-pre@example.org", "mailjet", "preblocked"),
		blockedEv(m4, "c-content@example.org", "content", "bad or empty template"),
		blockedEv(m4, "c-spam@example.org", "spam", "sender blocked"),
		blockedEv(m4, "c-system@example.org", "system", "connection issue"),
		blockedEv(m4, "c-dup@example.org", "mailjet", "duplicate in campaign"),
		mjEvent("unsub", m5, "unsub@example.org", map[string]any{"mj_list_id": 0, "ip": "192.0.2.1", "geo": "FR", "agent": "Mozilla"}),
		mjEvent("spam", m5, "spam@example.org", map[string]any{"source": "JMRPP"}),
		mjEvent("unsub", m6, "unsub2@example.org", map[string]any{"mj_list_id": 0}),
		mjEvent("unsub", m8, "unsub3@example.org", map[string]any{"mj_list_id": 0}),
		mjEvent("sent", m1, "hard@example.org", map[string]any{"smtp_reply": "sent (250 2.0.0 OK)"}),
		bounceEv("00000000000000000000", "nobody@example.org", true, "recipient", "user unknown", "550 unknown"), // not the relay's
	}
	if code := f.post(events); code != http.StatusOK {
		t.Fatalf("webhook answered %d", code)
	}
	// Mailjet sends the same events again (it retries for 24 h).
	if code := f.post(events); code != http.StatusOK {
		t.Fatalf("webhook answered %d to the resend", code)
	}
	want := map[string]string{"hard@example.org": "5.1.1", "soft@example.org": "4.2.2", "b-rcpt@example.org": "5.1.1",
		"b-domain@example.org": "5.4.4", "b-pre@example.org": "5.1.0", "reject@example.org": "5.1.1"}
	f.settled("the reports", func() bool {
		return len(f.odoo.Bounces()) >= len(want) && len(f.odoo.Blacklisted()) >= 1 && len(f.odoo.Unsubscribes()) >= 2
	})
	time.Sleep(300 * time.Millisecond) // anything doubled would arrive now
	bs := f.odoo.Bounces()
	if got := statusByRcpt(bs); len(bs) != len(want) || !mapsEqual(got, want) {
		t.Errorf("Odoo counted %d bounces %v, want %v", len(bs), got, want)
	}
	if r := f.odoo.Rejected(); len(r) > 0 {
		t.Errorf("Odoo would not count %d DSNs: %+v", len(r), r[0].Why)
	}
	if d := f.odoo.DuplicateDSNs(); len(d) > 0 {
		t.Errorf("DSNs sent twice: %v", d)
	}
	for _, b := range bs {
		if b.Recipient == "reject@example.org" && !strings.Contains(b.Diagnostic, "Recipient address rejected") {
			t.Errorf("the relay's failure reported with %q", b.Diagnostic)
		}
	}
	if bl := f.odoo.Blacklisted(); len(bl) != 1 || len(bl["spam@example.org"]) != 1 || !strings.Contains(bl["spam@example.org"][0], "JMRPP") {
		t.Errorf("blacklist %v", bl)
	}
	for _, c := range f.odoo.BlacklistCalls() {
		if c.Method == "search" && c.Context["active_test"] != false {
			t.Errorf("blacklist search without active_test False: %+v", c)
		}
	}
	u := f.odoo.Unsubscribes()
	slices.SortFunc(u, func(a, b odootest.Unsubscribe) int { return strings.Compare(a.Path, b.Path) })
	if len(u) != 2 || !u[0].OK || !strings.Contains(u[0].Query, "hash_token=tok3") || u[1].OK {
		t.Errorf("one-click POSTs %+v", u)
	}

	// The timeline and the filters.
	ctx := context.Background()
	f.r.Store.Flush(ctx)
	m, err := f.r.Store.Get(ctx, m1)
	if err != nil {
		t.Fatal(err)
	}
	var odooSteps []string
	for _, st := range m.Timeline {
		if st.Source == "odoo" {
			odooSteps = append(odooSteps, st.Kind)
		}
	}
	if m.Feedback != store.FeedbackReported || !slices.Equal(odooSteps, []string{"odoo:queued", "odoo:reported"}) {
		t.Errorf("m1: feedback %q, odoo steps %v", m.Feedback, odooSteps)
	}
	page, _ := f.r.Store.List(ctx, store.Filter{Feedback: store.FeedbackAlert})
	if len(page.Messages) != 1 || page.Messages[0].ID != m4 {
		t.Errorf("alerts: %+v", page.Messages)
	}
	page, _ = f.r.Store.List(ctx, store.Filter{Feedback: store.FeedbackFailed})
	if len(page.Messages) != 1 || page.Messages[0].ID != m8 {
		t.Errorf("failed: %+v", page.Messages)
	}
	page, _ = f.r.Store.List(ctx, store.Filter{Feedback: "any"})
	if len(page.Messages) != 7 { // all but m6 (nothing to report with)
		t.Errorf("%d messages with feedback", len(page.Messages))
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestOdooFeedbackOutage: with Odoo down, then refusing the API key, the
// webhook still answers 200 and nothing is lost or doubled; /readyz stays
// ready and says why reports wait.
func TestOdooFeedbackOutage(t *testing.T) {
	f := newFeedbackEnv(t, nil)
	var ids []string
	for i := range 4 {
		ids = append(ids, f.mail([]string{fmt.Sprintf("r%d@example.org", i)}, fmt.Sprintf("o%d", i), ""))
	}
	f.waitDelivered(4)
	f.odoo.SetDown(true)
	var evs []map[string]any
	for i, id := range ids[:2] {
		evs = append(evs, bounceEv(id, fmt.Sprintf("r%d@example.org", i), true, "recipient", "user unknown", "550 5.1.1 unknown"))
	}
	if code := f.post(evs); code != http.StatusOK {
		t.Fatalf("webhook answered %d while Odoo is down", code)
	}
	f.waitFor("a failed attempt", func() bool {
		st := f.r.Feedback().Status(context.Background())
		return st.Pending == 2 && f.r.Store.Flush(context.Background()) == nil
	})
	f.odoo.SetKey("replaced")
	f.odoo.SetDown(false)
	var more []map[string]any
	for i, id := range ids[2:] {
		more = append(more, bounceEv(id, fmt.Sprintf("r%d@example.org", i+2), true, "recipient", "user unknown", "550 5.1.1 unknown"))
	}
	if code := f.post(append(more, evs...)); code != http.StatusOK {
		t.Fatalf("webhook answered %d", code)
	}
	f.waitFor("the login problem to show", func() bool {
		return strings.Contains(f.r.Feedback().Status(context.Background()).Problem, "refused the login")
	})
	resp, err := http.Get("http://" + f.r.HTTPAddr().String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "reports to Odoo are waiting") || strings.Contains(string(body), odooKey) {
		t.Fatalf("/readyz: %d %s", resp.StatusCode, body)
	}
	if len(f.odoo.Bounces()) != 0 {
		t.Fatal("bounces counted with a refused key")
	}
	f.odoo.SetKey(odooKey) // the administrator fixes it in Odoo
	f.settled("all four reports", func() bool { return len(f.odoo.Bounces()) >= 4 })
	time.Sleep(300 * time.Millisecond)
	if n, d := len(f.odoo.Bounces()), f.odoo.DuplicateDSNs(); n != 4 || len(d) > 0 {
		t.Fatalf("%d bounces, duplicates %v", n, d)
	}
	if p := f.r.Feedback().Status(context.Background()).Problem; p != "" {
		t.Fatalf("problem still shown: %s", p)
	}
}

// TestOdooFeedbackSurvivesRestart: reports queued while Odoo is down are
// sent after the relay restarts, once.
func TestOdooFeedbackSurvivesRestart(t *testing.T) {
	f := newFeedbackEnv(t, nil)
	id := f.mail([]string{"x@example.org"}, "restart", "")
	f.waitDelivered(1)
	f.odoo.SetDown(true)
	if code := f.post([]map[string]any{bounceEv(id, "x@example.org", true, "recipient", "user unknown", "550 unknown")}); code != http.StatusOK {
		t.Fatal(code)
	}
	f.stop()
	f.odoo.SetDown(false)
	f.start()
	f.settled("the report after the restart", func() bool { return len(f.odoo.Bounces()) == 1 })
	// The resend after the restart is recognised.
	if code := f.post([]map[string]any{bounceEv(id, "x@example.org", true, "recipient", "user unknown", "550 unknown")}); code != http.StatusOK {
		t.Fatal(code)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(f.odoo.Bounces()); n != 1 {
		t.Fatalf("%d bounces", n)
	}
}

// TestOdooFeedbackWithoutBodies: with store.keep_bodies = 0 the DSN's
// embedded headers are rebuilt from what the store keeps, and Odoo still
// finds the original by its Message-Id.
func TestOdooFeedbackWithoutBodies(t *testing.T) {
	f := newFeedbackEnv(t, func(c *config.Config) { c.Store.KeepBodies = 0 })
	id := f.mail([]string{"nobody@example.org"}, "nobody", "")
	f.waitDelivered(1)
	if code := f.post([]map[string]any{bounceEv(id, "nobody@example.org", true, "recipient", "user unknown", "550 5.1.1 unknown")}); code != http.StatusOK {
		t.Fatal(code)
	}
	f.settled("the bounce", func() bool { return len(f.odoo.Bounces()) == 1 })
	b := f.odoo.Bounces()[0]
	// Rebuilt: the original's trace header (kept with the body) is not there.
	if !strings.Contains(string(b.Raw), "Subject: nobody") || !strings.HasPrefix(b.Original, "<nobody.") || strings.Contains(string(b.Raw), "(mjrelay)") {
		t.Fatalf("bounce %+v\n%s", b, b.Raw)
	}
}
