package sendapi_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/mailjet/sendapi"
	"github.com/mjrelay/mjrelay/mailjet/sendapi/sendapitest"
)

const (
	testKey    = "0123456789abcdef0123456789abcdef"
	testSecret = "fedcba9876543210fedcba9876543210"
	received   = "Received: from odoo.example.com (odoo.example.com [192.0.2.10])\r\n" +
		"\tby mjrelay.example.com (mjrelay) with ESMTPSA id q-1\r\n\tfor <zoe@example.org>; Tue, 03 Nov 2026 09:30:01 +0000\r\n"
)

func newTarget(t *testing.T, api *mjtest.API, mod func(*sendapi.Config)) *sendapi.Target {
	t.Helper()
	cfg := sendapi.Config{BaseURL: api.URL(), APIKey: testKey, SecretKey: testSecret}
	if mod != nil {
		mod(&cfg)
	}
	tg, err := sendapi.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tg.Close() })
	return tg
}

func TestOdooCorpusThroughEmulator(t *testing.T) {
	dir, cases := sendapitest.LoadCorpus(t, "testdata/odoo_corpus.py")
	api := mjtest.NewAPI(testKey, testSecret)
	defer api.Close()
	tg := newTarget(t, api, nil)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join(dir, c.File))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(body, []byte("\r\n")) {
				t.Fatal("corpus message is not CRLF")
			}
			m := &mailjet.Message{ID: c.ID, From: "bounce@example.com", Rcpts: c.Rcpts,
				Body:  append([]byte(received), body...),
				Hints: mailjet.Hints{Priority: c.Hints.Priority, Campaign: c.Hints.Campaign}}
			before := len(api.Sent())
			calls := api.RequestsTo("/v3.1/send")
			res := tg.Deliver(context.Background(), m)
			if len(res.Rcpts) != len(c.Rcpts) {
				t.Fatalf("%d recipient results for %d recipients", len(res.Rcpts), len(c.Rcpts))
			}
			if c.Unsupported {
				sendapitest.CheckUnsupported(t, res, c.Reason)
				if n := api.RequestsTo("/v3.1/send"); n != calls {
					t.Fatalf("an unsupported message was posted (%d calls)", n-calls)
				}
				return
			}
			if res.Unsupported {
				t.Fatalf("unsupported: %s", res.Reply)
			}
			sent := api.Sent()[before:]
			if len(sent) != len(c.Messages) {
				t.Fatalf("emulator got %d messages, want %d", len(sent), len(c.Messages))
			}
			for i, want := range c.Messages {
				sendapitest.CheckMessage(t, &sent[i].APISendMessage, &want)
			}
			sendapitest.CheckIDs(t, res, sent)
		})
	}
}
