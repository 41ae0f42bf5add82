package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/inspect"
	"github.com/mjrelay/mjrelay/relay/store/storetest"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// TestLog runs `mjrelay log` against the store of a "running" relay (the
// writer has it open).
func TestLog(t *testing.T) {
	t.Setenv("MJ_APIKEY_PUBLIC", "")
	t.Setenv("MJ_APIKEY_PRIVATE", "")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "mjrelay.toml")
	if err := os.WriteFile(cfgPath, []byte("data_dir = \""+filepath.Join(dir, "data")+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Recent traffic, so that --since 24h finds it.
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	store, err := inspect.Open(inspect.Path(filepath.Join(dir, "data")), inspect.Options{KeepBodies: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	smp := storetest.NewSample(t0)
	for _, e := range smp.Events {
		store.Record(e)
	}
	if err := store.RecordMailjet(context.Background(), smp.Mailjet); err != nil {
		t.Fatal(err)
	}
	for _, res := range []string{trafficlog.FeedbackQueued, trafficlog.FeedbackReported} {
		e := trafficlog.NewFeedback(smp.IDs["invoice"], trafficlog.FeedbackNote{Rcpt: "mr.x@client.example", Action: "bounce",
			Result: res, Reason: "mailjet bounce: user unknown", Answer: "message_process returned false"})
		e.Time = t0.Add(time.Minute)
		store.Record(e)
	}
	if err := store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	ids := smp.IDs
	tests := []struct {
		name     string
		args     []string
		code     int
		want     []string
		dontWant []string
	}{
		{"all", nil, 0, []string{"RECEIVED", "Invoice INV/2026/0042", "Spring newsletter", "spoof@evil.example", ids["retry"]}, nil},
		{"by recipient", []string{"--to", "mr.x@client.example"}, 0, []string{"Invoice INV/2026/0042", "delivered", ids["invoice"]},
			[]string{"Spring newsletter"}},
		{"by state", []string{"--state", "failed,bounced"}, 0, []string{"Order confirmation SO042", "Spring newsletter"},
			[]string{"Invoice"}},
		{"search", []string{"-q", "quotation"}, 0, []string{"Quotation S00017"}, []string{"Invoice"}},
		{"since", []string{"--since", "24h", "--class", "bulk"}, 0, []string{"Spring newsletter"}, []string{"Invoice"}},
		{"nothing", []string{"--since", "1m"}, 0, []string{"No message matches."}, nil},
		{"paging", []string{"--limit", "2"}, 0, []string{"More: add --cursor "}, nil},
		{"detail", []string{ids["invoice"]}, 0, []string{"DELIVERED", "Invoice INV/2026/0042", "Recipients", "Timeline",
			"Received from 192.0.2.10", "Attempt 1 via api", "Accepted by Mailjet", "Mailjet delivered to mr.x@client.example",
			"sent (250 2.0.0 OK", "288230376151711744", "mjrelay log --raw"}, nil},
		{"flags after the id", []string{ids["invoice"], "--json"}, 0, []string{`"timeline"`, `"mailjet_id": "288230376151711744"`}, nil},
		{"raw", []string{"--raw", ids["invoice"]}, 0, []string{"Subject: Invoice INV/2026/0042\r\n\r\nHello Mr. X"}, nil},
		{"by feedback", []string{"--feedback", "reported"}, 0, []string{"Invoice INV/2026/0042"}, []string{"Spring newsletter"}},
		{"feedback in the detail", []string{ids["invoice"]}, 0, []string{"Odoo feedback:  reported", "Reported to Odoo: bounce (DSN) for mr.x@client.example",
			"message_process returned false"}, nil},
		{"bad feedback", []string{"--feedback", "sent"}, 2, nil, nil},
		{"unknown id", []string{"nope"}, 1, nil, nil},
		{"no raw", []string{"--raw", ids["newsletter"]}, 1, nil, nil},
		{"bad state", []string{"--state", "gone"}, 2, nil, nil},
		{"bad time", []string{"--since", "yesterday"}, 2, nil, nil},
		{"bad limit", []string{"--limit", "0"}, 2, nil, nil},
		{"bad cursor", []string{"--cursor", "x"}, 1, nil, nil},
		{"two ids", []string{"a", "b"}, 2, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := runLog(context.Background(), append([]string{"--config", cfgPath}, tc.args...), &out, &errOut)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.code, errOut.String())
			}
			for _, s := range tc.want {
				if !strings.Contains(out.String(), s) {
					t.Errorf("output lacks %q:\n%s", s, out.String())
				}
			}
			for _, s := range tc.dontWant {
				if strings.Contains(out.String(), s) {
					t.Errorf("output shows %q:\n%s", s, out.String())
				}
			}
		})
	}
	t.Run("json", func(t *testing.T) {
		var out, errOut bytes.Buffer
		if code := runLog(context.Background(), []string{"--config", cfgPath, "--json", "--state", "deferred"}, &out, &errOut); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
		var p struct {
			Messages []struct {
				ID, State string
			} `json:"messages"`
		}
		if err := json.Unmarshal(out.Bytes(), &p); err != nil || len(p.Messages) != 1 || p.Messages[0].ID != ids["retry"] {
			t.Errorf("JSON %s (%v)", out.String(), err)
		}
	})
	t.Run("no store", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "other.toml")
		os.WriteFile(other, []byte("data_dir = \""+t.TempDir()+"\"\n"), 0o600)
		var out, errOut bytes.Buffer
		if code := runLog(context.Background(), []string{"--config", other}, &out, &errOut); code != 1 ||
			!strings.Contains(errOut.String(), "store") {
			t.Errorf("exit %d: %s", code, errOut.String())
		}
	})
}
