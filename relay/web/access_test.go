package web

import (
	"net/http"
	"strings"
	"testing"
)

func TestAccessWithoutUsers(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, path string
		opts       []reqOpt
		want       int
	}{
		{"loopback", "/", nil, 200},
		{"loopback v6", "/api/messages", []reqOpt{from("[::1]:40000"), host("[::1]:8025")}, 200},
		{"127.0.0.1 host", "/messages", []reqOpt{host("127.0.0.1:8025")}, 200},
		{"remote address", "/", []reqOpt{from("192.0.2.7:40000")}, 403},
		{"remote address, API", "/api/messages", []reqOpt{from("10.0.0.7:40000")}, 403},
		{"remote address, metrics", "/metrics", []reqOpt{from("10.0.0.7:40000")}, 403},
		{"remote address, a message's body", "/messages/x/body", []reqOpt{from("10.0.0.7:40000")}, 403},
		{"remote address, a part", "/api/messages/x/parts/1", []reqOpt{from("10.0.0.7:40000")}, 403},
		{"DNS rebinding, a live fragment", "/messages?fragment=live", []reqOpt{host("evil.example:8025")}, 403},
		{"DNS rebinding: loopback peer, foreign Host", "/api/messages", []reqOpt{host("evil.example:8025")}, 403},
		{"health from anywhere", "/healthz", []reqOpt{from("192.0.2.7:40000")}, 200},
		{"readiness from anywhere", "/readyz", []reqOpt{from("192.0.2.7:40000")}, 200},
		{"static", "/static/style.css", nil, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if w := e.do(t, "GET", tc.path, nil, tc.opts...); w.Code != tc.want {
				t.Errorf("%s: %d, want %d", tc.path, w.Code, tc.want)
			}
		})
	}
}

func TestAccessWithUsers(t *testing.T) {
	e := newEnv(t, withUsers(t), withWebhook(t))
	remote := []reqOpt{from("192.0.2.7:40000"), host("relay.example.com")}
	tests := []struct {
		name, path string
		opts       []reqOpt
		want       int
	}{
		{"no credentials", "/", nil, 401},
		{"no credentials, API", "/api/messages", nil, 401},
		{"no credentials, raw", "/api/messages/x/raw", nil, 401},
		{"no credentials, metrics", "/metrics", nil, 401},
		{"no credentials, a message's body", "/messages/x/body", nil, 401},
		{"no credentials, an attachment", "/api/messages/x/attachments/2", nil, 401},
		{"no credentials, funnel", "/api/funnel", nil, 401},
		{"no credentials, live fragment", "/?fragment=live", nil, 401},
		{"wrong password", "/", []reqOpt{auth("admin", "guess")}, 401},
		{"unknown user", "/", []reqOpt{auth("root", uiPassword)}, 401},
		{"webhook credentials", "/", []reqOpt{auth("mailjet", hookPassword)}, 401},
		{"right credentials", "/", []reqOpt{auth("admin", uiPassword)}, 200},
		{"right credentials again (cached)", "/api/messages", []reqOpt{auth("admin", uiPassword)}, 200},
		{"metrics", "/metrics", []reqOpt{auth("admin", uiPassword)}, 200},
		{"health is open", "/healthz", nil, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := e.do(t, "GET", tc.path, nil, append(remote, tc.opts...)...)
			if w.Code != tc.want {
				t.Errorf("%s: %d, want %d", tc.path, w.Code, tc.want)
			}
			if w.Code == http.StatusUnauthorized && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("401 with WWW-Authenticate %q", w.Header().Get("WWW-Authenticate"))
			}
		})
	}
}

// TestCrossSiteActions: a page on another site cannot make the browser
// retry or delete (the browser sends the credentials, or the request comes
// from loopback).
func TestCrossSiteActions(t *testing.T) {
	e := newEnv(t)
	retry := e.smp.IDs["retry"]
	tests := []struct {
		name string
		opts []reqOpt
		want int
	}{
		{"cross-site form", []reqOpt{header("Sec-Fetch-Site", "cross-site")}, 403},
		{"foreign Origin", []reqOpt{header("Origin", "https://evil.example")}, 403},
		{"same origin", []reqOpt{header("Sec-Fetch-Site", "same-origin")}, 303},
		{"no browser headers (curl)", nil, 303},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if w := e.do(t, "POST", "/messages/"+retry+"/retry", nil, tc.opts...); w.Code != tc.want {
				t.Errorf("%d %s, want %d", w.Code, w.Body, tc.want)
			}
		})
	}
}

// TestNoSecrets fetches every page and document and looks for the
// Mailjet key (in the account snapshot), the password hashes and the
// passwords.
func TestNoSecrets(t *testing.T) {
	e := newEnv(t, withUsers(t), withWebhook(t))
	secrets := []string{apiKey, uiPassword, hookPassword, e.opts.Users[0].PasswordHash, e.opts.Webhook.PasswordHash}
	id := e.smp.IDs["invoice"]
	paths := []string{"/", "/?window=30d", "/messages", "/messages?q=invoice", "/messages/" + id, "/messages/nope", "/queue",
		"/senders", "/api/messages", "/api/messages/" + id, "/api/messages/" + id + "/raw", "/api/queue", "/api/senders",
		"/api/stats", "/metrics", "/healthz", "/readyz", "/static/app.js"}
	for _, p := range paths {
		w := e.do(t, "GET", p, nil, auth("admin", uiPassword))
		if w.Code >= 500 {
			t.Errorf("%s: %d", p, w.Code)
		}
		for _, s := range secrets {
			if strings.Contains(w.Body.String(), s) {
				t.Errorf("%s shows the secret %.12s…", p, s)
			}
		}
		for k, v := range w.Header() {
			for _, s := range secrets {
				if strings.Contains(strings.Join(v, " "), s) {
					t.Errorf("%s: header %s shows the secret %.12s…", p, k, s)
				}
			}
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t)
	w := e.do(t, "GET", "/messages", nil)
	for k, want := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
		"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"} {
		if got := w.Header().Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP = %q", csp)
	}
}
