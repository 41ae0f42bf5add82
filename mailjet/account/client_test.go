package account_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	mj "github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/mailjet/account"
	"github.com/mjrelay/mjrelay/mailjet/mjtest"
)

const (
	testKey    = "0123456789abcdef0123456789abcdef"
	testSecret = "s3cr3t-fedcba9876543210fedcba98"
)

func newEmulator(t *testing.T) *mjtest.API {
	t.Helper()
	api := mjtest.NewAPI(testKey, testSecret)
	t.Cleanup(api.Close)
	return api
}

func newClient(t *testing.T, api *mjtest.API, secret string) *account.Client {
	t.Helper()
	c, err := account.NewClient(api.URL(), testKey, secret, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClientPaginatesOver1000Senders(t *testing.T) {
	api := newEmulator(t)
	const n = 2500
	for i := range n {
		api.AddSender(fmt.Sprintf("user%04d@example.com", i), mjtest.APIStatusActive, "")
	}
	api.AddSender("gone@example.com", mjtest.APIStatusDeleted, "")
	api.AddDomain(mjtest.APIDomain{Domain: "example.com", DKIMStatus: "OK", SPFStatus: "Error"})

	snap, err := newClient(t, api, testSecret).Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Senders) != n {
		t.Fatalf("%d senders, want %d", len(snap.Senders), n)
	}
	seen := map[string]bool{}
	for _, s := range snap.Senders {
		seen[s.Email] = true
	}
	for _, e := range []string{"user0000@example.com", "user0999@example.com", "user1000@example.com", "user2499@example.com"} {
		if !seen[e] {
			t.Errorf("missing %s", e)
		}
	}
	if seen["gone@example.com"] {
		t.Error("deleted sender listed")
	}
	if got := api.RequestsTo("/v3/REST/sender"); got != 3 {
		t.Errorf("%d sender requests, want 3 pages of 1000", got)
	}
	d, ok := snap.Domain("EXAMPLE.com")
	if !ok || d.DKIMStatus != "OK" || d.SPFStatus != "Error" || d.OwnerShipToken == "" || d.DKIMRecordValue == "" {
		t.Fatalf("domain %+v", d)
	}
}

func TestClientErrors(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(*mjtest.API)
		secret  string
		check   func(error) bool
		wantMsg string
	}{
		{"401 with JSON body", nil, "wrong-secret",
			func(err error) bool { var e *account.AuthError; return errors.As(err, &e) && e.APIKey == testKey },
			`API key "` + mj.MaskKey(testKey) + `" was rejected`},
		{"401 with empty body", func(a *mjtest.API) { a.SetEmptyUnauthorized(true) }, "wrong-secret",
			func(err error) bool { var e *account.AuthError; return errors.As(err, &e) },
			`API key "` + mj.MaskKey(testKey) + `" was rejected`},
		{"429 text/html", func(a *mjtest.API) { a.SetRateLimited(100) }, testSecret,
			func(err error) bool {
				var e *account.StatusError
				return errors.As(err, &e) && e.StatusCode == 429 && e.Temporary()
			}, "HTTP 429"},
		{"503", func(a *mjtest.API) { a.SetDown(true) }, testSecret,
			func(err error) bool {
				var e *account.StatusError
				return errors.As(err, &e) && e.StatusCode == 503 && e.Temporary()
			}, "HTTP 503"},
		{"missing content type", func(a *mjtest.API) { a.SetOmitContentType(true) }, testSecret,
			func(err error) bool { var e *account.FormatError; return errors.As(err, &e) && e.StatusCode == 200 },
			"instead of application/json"},
		{"connection dropped", func(a *mjtest.API) { a.SetDropConnections(true) }, testSecret,
			func(err error) bool { var e *account.UnreachableError; return errors.As(err, &e) },
			"API unreachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newEmulator(t)
			api.AddSender("a@example.com", mjtest.APIStatusActive, "")
			if tt.setup != nil {
				tt.setup(api)
			}
			c := newClient(t, api, tt.secret)
			for _, call := range []struct {
				name string
				f    func() error
			}{
				{"Fetch", func() error { s, err := c.Fetch(context.Background()); return orSnapshot(s, err) }},
				{"Validate", func() error { return c.Validate(context.Background()) }},
			} {
				err := call.f()
				if err == nil || !tt.check(err) {
					t.Fatalf("%s: error %#v (%v) is not the expected kind", call.name, err, err)
				}
				msg := err.Error()
				if !strings.Contains(msg, tt.wantMsg) {
					t.Errorf("%s: %q does not contain %q", call.name, msg, tt.wantMsg)
				}
				if strings.Contains(msg, testSecret) || strings.Contains(msg, tt.secret) {
					t.Errorf("%s: error reveals the secret: %q", call.name, msg)
				}
			}
		})
	}
}

func orSnapshot(s *account.Snapshot, err error) error {
	if err == nil && s == nil {
		return errors.New("nil snapshot without error")
	}
	return err
}

func TestNewClientURL(t *testing.T) {
	tests := []struct {
		url     string
		wantErr bool
	}{
		{"https://api.mailjet.com", false},
		{"https://api.us.mailjet.com/", false},
		{"https://api.mailjet.com/v3", false},
		{"ftp://api.mailjet.com", true},
		{"https://user:pw@api.mailjet.com", true},
		{"api.mailjet.com", true},
	}
	for _, tt := range tests {
		_, err := account.NewClient(tt.url, testKey, testSecret, nil, 0)
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: err %v, want error %v", tt.url, err, tt.wantErr)
		}
	}
	if _, err := account.NewClient("https://api.mailjet.com", testKey, "", nil, 0); err == nil {
		t.Error("no secret: no error")
	}
}

// Both forms of api_url reach the same paths (the SDK needs /v3 in its base).
func TestClientBaseURLWithV3(t *testing.T) {
	api := newEmulator(t)
	api.AddSender("a@example.com", mjtest.APIStatusActive, "")
	c, err := account.NewClient(api.URL()+"/v3/", testKey, testSecret, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := c.Fetch(context.Background())
	if err != nil || len(snap.Senders) != 1 {
		t.Fatalf("%v %+v", err, snap)
	}
}

func TestClientCheckDomain(t *testing.T) {
	api := newEmulator(t)
	api.AddDomain(mjtest.APIDomain{Domain: "example.com", DKIMStatus: "Error", SPFStatus: "OK"})
	res, err := newClient(t, api, testSecret).CheckDomain(context.Background(), "example.com")
	if err != nil || res.DKIMStatus != "Error" || res.SPFStatus != "OK" || len(res.DKIMErrors) == 0 {
		t.Fatalf("%v %+v", err, res)
	}
	_, err = newClient(t, api, testSecret).CheckDomain(context.Background(), "nowhere.example")
	var se *account.StatusError
	if !errors.As(err, &se) || se.StatusCode != 404 {
		t.Fatalf("unknown domain: %v", err)
	}
}
