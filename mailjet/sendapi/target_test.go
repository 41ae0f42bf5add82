package sendapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/mailjet/sendapi"
)

func simple(rcpts ...string) *mailjet.Message {
	body := msg("<p>hello & bye</p>\n", "Received: by relay", hFrom, "To: Zoe <zoe@example.org>, Bob <bob@example.net>",
		"Subject: hi", "Content-Type: text/html; charset=utf-8")
	return &mailjet.Message{ID: "q42", From: "bounce@example.com", Rcpts: rcpts, Body: body,
		Hints: mailjet.Hints{Priority: -1}}
}

func TestDeliverAgainstEmulator(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(api *mjtest.API)
		cfg       func(c *sendapi.Config)
		want      mailjet.Status
		wantReply string // in every recipient's reply
		noIDs     bool
	}{
		{name: "sent", want: mailjet.Delivered, wantReply: "sent, MessageID 5"},
		{name: "rate limited", setup: func(a *mjtest.API) { a.SetRateLimited(1) },
			want: mailjet.TempFail, wantReply: "HTTP 429 Rate limit exceeded"},
		{name: "server error", setup: func(a *mjtest.API) { a.SetSendServerErrors(1) },
			want: mailjet.TempFail, wantReply: "HTTP 500 Internal Server Error"},
		{name: "service down", setup: func(a *mjtest.API) { a.SetDown(true) },
			want: mailjet.TempFail, wantReply: "HTTP 503 503 Service Unavailable"},
		{name: "connection dropped", setup: func(a *mjtest.API) { a.SetDropConnections(true) },
			want: mailjet.TempFail, wantReply: "Send API unreachable"},
		{name: "sender not authorized", setup: func(a *mjtest.API) { a.SetSendCheckSenders(true) },
			want:      mailjet.PermFail,
			wantReply: `send-0008 403 "shop@example.com" is not an authorized sender email address for your account.`},
		{name: "sender authorized by its domain", setup: func(a *mjtest.API) {
			a.SetSendCheckSenders(true)
			a.AddSender("*@example.com", mjtest.APIStatusActive, "")
		}, want: mailjet.Delivered, wantReply: "sent"},
		{name: "bad secret", cfg: func(c *sendapi.Config) { c.SecretKey = "wrong-secret-value" },
			want: mailjet.TempFail, wantReply: "HTTP 401 API key authentication/authorization failure"},
		{name: "sandbox", cfg: func(c *sendapi.Config) { c.SandboxMode = true },
			want: mailjet.Delivered, wantReply: "sandbox mode", noIDs: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := mjtest.NewAPI(testKey, testSecret)
			defer api.Close()
			if tt.setup != nil {
				tt.setup(api)
			}
			var logs bytes.Buffer
			tg := newTarget(t, api, func(c *sendapi.Config) {
				c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
				if tt.cfg != nil {
					tt.cfg(c)
				}
			})
			res := tg.Deliver(context.Background(), simple("zoe@example.org", "bob@example.net", "blind@example.com"))
			t.Logf("reply %q; first recipient %q", res.Reply, res.Rcpts[0].Reply)
			if res.Unsupported || len(res.Rcpts) != 3 {
				t.Fatalf("%+v", res)
			}
			for _, r := range res.Rcpts {
				if r.Status != tt.want || !strings.Contains(r.Reply.String(), tt.wantReply) {
					t.Errorf("%s: %v %q, want %v %q", r.Rcpt, r.Status, r.Reply, tt.want, tt.wantReply)
				}
				if got := r.MessageID != 0 && r.MessageUUID != ""; got != (tt.want == mailjet.Delivered && !tt.noIDs) {
					t.Errorf("%s: ids %d %q", r.Rcpt, r.MessageID, r.MessageUUID)
				}
			}
			sent := api.Sent()
			if wantSent := tt.want == mailjet.Delivered && !tt.noIDs; (len(sent) == 1) != wantSent {
				t.Fatalf("emulator recorded %d messages", len(sent))
			}
			if res.Upstream != api.URL()+"/v3.1/send" || res.Reply.IsZero() {
				t.Errorf("Upstream %q Reply %q", res.Upstream, res.Reply)
			}
			if tt.name == "bad secret" && (!strings.Contains(res.Reply.String(), mailjet.MaskKey(testKey)) || strings.Contains(res.Reply.String(), testKey)) {
				t.Errorf("reply does not name the API key: %q", res.Reply)
			}
			for _, secret := range []string{testSecret, "wrong-secret-value"} {
				if strings.Contains(logs.String(), secret) || strings.Contains(res.Reply.String(), secret) {
					t.Fatalf("secret leaked: %q / %s", res.Reply, logs.String())
				}
			}
			if !strings.Contains(logs.String(), "q42") {
				t.Errorf("no log line for the delivery: %s", logs.String())
			}
		})
	}
}

// TestPartialFailureAgainstEmulator: two blind copies in one call, one of
// which the emulator refuses (invalid address): HTTP 400 with mixed
// statuses, and each recipient keeps its own message's result.
func TestPartialFailureAgainstEmulator(t *testing.T) {
	api := mjtest.NewAPI(testKey, testSecret)
	defer api.Close()
	tg := newTarget(t, api, nil)
	m := simple("b1@example.com", "b2@localhost")
	m.Body = msg("hi\n", hFrom, "To: undisclosed-recipients:;", "Subject: x")
	res := tg.Deliver(context.Background(), m)
	sent := api.Sent()
	if len(sent) != 1 || len(sent[0].Recipients) != 1 {
		t.Fatalf("emulator recorded %+v", sent)
	}
	ok, bad := res.Rcpts[0], res.Rcpts[1]
	if ok.Status != mailjet.Delivered || ok.MessageID != sent[0].Recipients[0].MessageID || ok.MessageUUID == "" {
		t.Errorf("b1: %v %q %d", ok.Status, ok.Reply, ok.MessageID)
	}
	if bad.Status != mailjet.PermFail || !strings.HasPrefix(bad.Reply.String(), `mj-0013 400 "b2@localhost"`) || bad.MessageID != 0 {
		t.Errorf("b2: %v %q", bad.Status, bad.Reply)
	}
	if !strings.Contains(res.Reply.String(), "HTTP 400 1 message(s) sent, 1 refused") || res.UpstreamID != ok.MessageUUID {
		t.Errorf("Reply %q UpstreamID %q", res.Reply, res.UpstreamID)
	}
}

func TestDeliverConnectionRefusedAndClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	tg, err := sendapi.New(sendapi.Config{BaseURL: "http://" + addr, APIKey: testKey, SecretKey: testSecret, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	res := tg.Deliver(context.Background(), simple("zoe@example.org"))
	if r := res.Rcpts[0]; r.Status != mailjet.TempFail || !strings.Contains(r.Reply.String(), "refused") {
		t.Fatalf("%v %q", r.Status, r.Reply)
	}
	_ = tg.Close()
	res = tg.Deliver(context.Background(), simple("zoe@example.org"))
	if r := res.Rcpts[0]; r.Status != mailjet.TempFail || !strings.Contains(r.Reply.String(), "closed") {
		t.Fatalf("after Close: %v %q", r.Status, r.Reply)
	}
}

// stub is a fake /v3.1/send answering from a script, one entry per call.
type stub struct {
	mu      sync.Mutex
	answers []func(w http.ResponseWriter, req map[string]any)
	bodies  [][]byte
	srv     *httptest.Server
}

func newStub(t *testing.T, answers ...func(w http.ResponseWriter, req map[string]any)) *stub {
	s := &stub{answers: answers}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		user, pass, ok := r.BasicAuth()
		if !ok || user != testKey || pass != testSecret || r.URL.Path != "/v3.1/send" ||
			r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("bad request %s %s auth %v", r.Method, r.URL.Path, ok)
		}
		var req map[string]any
		if err := json.Unmarshal(body, &req); err != nil {
			t.Errorf("request is not JSON: %v", err)
		}
		s.mu.Lock()
		s.bodies = append(s.bodies, body)
		n := len(s.bodies)
		s.mu.Unlock()
		if n > len(s.answers) {
			t.Errorf("unexpected call %d", n)
			w.WriteHeader(500)
			return
		}
		s.answers[n-1](w, req)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func reply(status int, body string) func(w http.ResponseWriter, _ map[string]any) {
	return func(w http.ResponseWriter, _ map[string]any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func TestDeliverInterpretsAnswers(t *testing.T) {
	blind := func() *mailjet.Message {
		m := simple("b1@example.com", "b2@example.com")
		m.Body = msg("hi\n", hFrom, "To: undisclosed-recipients:;", "Subject: x")
		return m
	}
	tests := []struct {
		name    string
		m       *mailjet.Message
		answers []func(http.ResponseWriter, map[string]any)
		want    []mailjet.Status
		replies []string
		ids     []int64
	}{
		{name: "partial failure keeps each message's result", m: blind(),
			answers: []func(http.ResponseWriter, map[string]any){reply(400, `{"Messages":[
				{"Status":"success","CustomID":"q42","To":[{"Email":"B1@Example.com","MessageUUID":"u-1","MessageID":576460752303423999,"MessageHref":"x"}],"Cc":[],"Bcc":[]},
				{"Status":"error","Errors":[{"ErrorIdentifier":"e","ErrorCode":"mj-0013","StatusCode":400,"ErrorMessage":"\"b2@example.com\" is an invalid email address.","ErrorRelatedTo":["To[0].Email"]}]}]}`)},
			want:    []mailjet.Status{mailjet.Delivered, mailjet.PermFail},
			replies: []string{"MessageUUID u-1", `mj-0013 400 "b2@example.com" is an invalid email address.`},
			ids:     []int64{576460752303423999, 0}},
		{name: "a per-message server error is temporary", m: simple("zoe@example.org"),
			answers: []func(http.ResponseWriter, map[string]any){reply(500, `{"Messages":[{"Status":"error","Errors":[{"ErrorCode":"","StatusCode":500,"ErrorMessage":"Cannot convert data from Null value"}]}]}`)},
			want:    []mailjet.Status{mailjet.TempFail}, replies: []string{"500 Cannot convert data from Null value"}},
		{name: "root-level validation error is permanent", m: simple("zoe@example.org"),
			answers: []func(http.ResponseWriter, map[string]any){reply(400, `{"ErrorIdentifier":"x","ErrorCode":"mj-0002","ErrorMessage":"Malformed JSON, please review the syntax and properties types.","StatusCode":400}`)},
			want:    []mailjet.Status{mailjet.PermFail}, replies: []string{"HTTP 400 mj-0002 Malformed JSON"}},
		{name: "wrong endpoint is temporary", m: simple("zoe@example.org"),
			answers: []func(http.ResponseWriter, map[string]any){reply(404, `{"ErrorInfo":"","ErrorMessage":"Object not found","StatusCode":404}`)},
			want:    []mailjet.Status{mailjet.TempFail}, replies: []string{"HTTP 404 Object not found (check the Send API URL)"}},
		{name: "redirects are not followed", m: simple("zoe@example.org"),
			answers: []func(http.ResponseWriter, map[string]any){func(w http.ResponseWriter, _ map[string]any) {
				w.Header().Set("Location", "/elsewhere")
				w.WriteHeader(http.StatusFound)
			}},
			want: []mailjet.Status{mailjet.TempFail}, replies: []string{"HTTP 302"}},
		{name: "a 200 without results is accepted", m: simple("zoe@example.org"),
			answers: []func(http.ResponseWriter, map[string]any){reply(200, `<html>ok</html>`)},
			want:    []mailjet.Status{mailjet.Delivered}, replies: []string{"no per-message results"}},
		{name: "403 without results is an account problem", m: simple("zoe@example.org"),
			answers: []func(http.ResponseWriter, map[string]any){reply(403, `{"ErrorCode":"mj-0001","ErrorMessage":"Key suspended","StatusCode":403}`)},
			want:    []mailjet.Status{mailjet.TempFail}, replies: []string{"HTTP 403 mj-0001 Key suspended (API key " + mailjet.MaskKey(testKey)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStub(t, tt.answers...)
			tg, err := sendapi.New(sendapi.Config{BaseURL: s.srv.URL + "/", APIKey: testKey, SecretKey: testSecret})
			if err != nil {
				t.Fatal(err)
			}
			res := tg.Deliver(context.Background(), tt.m)
			for i, r := range res.Rcpts {
				if r.Status != tt.want[i] || !strings.Contains(r.Reply.String(), tt.replies[i]) {
					t.Errorf("%s: %v %q, want %v %q", r.Rcpt, r.Status, r.Reply, tt.want[i], tt.replies[i])
				}
				if tt.ids != nil && r.MessageID != tt.ids[i] {
					t.Errorf("%s: MessageID %d, want %d", r.Rcpt, r.MessageID, tt.ids[i])
				}
			}
			if len(s.bodies) != len(tt.answers) {
				t.Fatalf("%d calls", len(s.bodies))
			}
		})
	}
}

// TestRequestBody checks what goes on the wire: no HTML escaping,
// SandboxMode, the queue id as CustomID.
func TestRequestBody(t *testing.T) {
	s := newStub(t, reply(200, `{"Messages":[{"Status":"success","To":[{"Email":"zoe@example.org","MessageUUID":"","MessageID":0}]}]}`))
	tg, err := sendapi.New(sendapi.Config{BaseURL: s.srv.URL, APIKey: testKey, SecretKey: testSecret, SandboxMode: true})
	if err != nil {
		t.Fatal(err)
	}
	res := tg.Deliver(context.Background(), simple("zoe@example.org"))
	if res.Rcpts[0].Status != mailjet.Delivered || !strings.Contains(res.Reply.String(), "sandbox") {
		t.Fatalf("%+v", res)
	}
	body := string(s.bodies[0])
	for _, want := range []string{`"HTMLPart":"<p>hello & bye</p>\n"`, `"SandboxMode":true`, `"CustomID":"q42"`,
		`"To":[{"Email":"zoe@example.org","Name":"Zoe"}]`} {
		if !strings.Contains(body, want) {
			t.Errorf("request lacks %s:\n%s", want, body)
		}
	}
	if strings.Contains(body, "Received") || strings.Contains(body, "bob@example.net") {
		t.Errorf("request carries a forbidden header or a non-envelope recipient:\n%s", body)
	}
}

// TestLargeCopiesAreSplitAcrossCalls: blind copies whose attachments exceed
// 15 MB together go in several calls, and a failure of the second call only
// affects its recipients.
func TestLargeCopiesAreSplitAcrossCalls(t *testing.T) {
	att := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xAB}, 6<<20))
	body := msg("--B\nContent-Type: text/plain\n\nx\n--B\nContent-Type: application/pdf\nContent-Disposition: attachment; filename=a.pdf\n"+
		"Content-Transfer-Encoding: base64\n\n"+att+"\n--B--\n", hFrom, "To: list@example.com", `Content-Type: multipart/mixed; boundary="B"`)
	m := &mailjet.Message{ID: "q9", Rcpts: []string{"b1@example.com", "b2@example.com", "b3@example.com"}, Body: body,
		Hints: mailjet.Hints{Priority: -1}}
	ok := func(w http.ResponseWriter, req map[string]any) {
		var out []map[string]any
		for i, msg := range req["Messages"].([]any) {
			to := msg.(map[string]any)["To"].([]any)[0].(map[string]any)["Email"]
			out = append(out, map[string]any{"Status": "success", "To": []any{map[string]any{"Email": to, "MessageUUID": "u", "MessageID": 100 + i}}})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"Messages": out})
	}
	s := newStub(t, ok, func(w http.ResponseWriter, _ map[string]any) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(429)
		_, _ = io.WriteString(w, "Rate limit exceeded")
	})
	tg, err := sendapi.New(sendapi.Config{BaseURL: s.srv.URL, APIKey: testKey, SecretKey: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	res := tg.Deliver(context.Background(), m)
	want := []mailjet.Status{mailjet.Delivered, mailjet.Delivered, mailjet.TempFail}
	for i, r := range res.Rcpts {
		if r.Status != want[i] {
			t.Errorf("%s: %v %q", r.Rcpt, r.Status, r.Reply)
		}
	}
	if len(s.bodies) != 2 || !strings.Contains(res.Reply.String(), "2 calls") {
		t.Fatalf("%d calls, reply %q", len(s.bodies), res.Reply)
	}
}

func TestDeliverTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	tg, err := sendapi.New(sendapi.Config{BaseURL: srv.URL, APIKey: testKey, SecretKey: testSecret, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res := tg.Deliver(context.Background(), simple("zoe@example.org"))
	if r := res.Rcpts[0]; r.Status != mailjet.TempFail || !strings.Contains(r.Reply.String(), "deadline") || time.Since(start) > 5*time.Second {
		t.Fatalf("%v %q after %v", r.Status, r.Reply, time.Since(start))
	}
}

func TestNewValidates(t *testing.T) {
	for _, c := range []sendapi.Config{
		{BaseURL: "", APIKey: "k", SecretKey: "s"},
		{BaseURL: "ftp://api.mailjet.com", APIKey: "k", SecretKey: "s"},
		{BaseURL: "https://k:s@api.mailjet.com", APIKey: "k", SecretKey: "s"},
		{BaseURL: "https://api.mailjet.com", APIKey: "k"},
		{BaseURL: "https://api.mailjet.com", SecretKey: "s"},
	} {
		if _, err := sendapi.New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		} else if c.SecretKey != "" && strings.Contains(err.Error(), ":s@") {
			t.Errorf("error shows the secret: %v", err)
		}
	}
	tg, err := sendapi.New(sendapi.Config{BaseURL: "https://api.us.mailjet.com/", APIKey: "k", SecretKey: "s"})
	if err != nil || tg.Name() != "api" || tg.Endpoint() != "https://api.us.mailjet.com/v3.1/send" {
		t.Fatalf("%v %v", tg, err)
	}
}
