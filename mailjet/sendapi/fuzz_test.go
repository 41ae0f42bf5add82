package sendapi_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/mailjet/sendapi"
)

// FuzzConvert feeds arbitrary messages and envelopes to Convert. Seeds: a few
// here plus the Odoo corpus in testdata/fuzz/FuzzConvert (written by
// odoo_corpus.py --fuzz). Besides not panicking, a conversion must never send
// to an address outside the envelope, must give every envelope recipient
// exactly one message, and must respect the API's documented constraints.
func FuzzConvert(f *testing.F) {
	f.Add(msg("hello\n", hFrom, hTo, "Subject: =?utf-8?q?caf=C3=A9?="), "zoe@example.org,blind@example.com")
	f.Add(msg(multipart("Content-Type: text/html\n\n<p>x</p>",
		"Content-Type: image/png\nContent-ID: <i>\nContent-Transfer-Encoding: base64\n\naGk="),
		hFrom, "To: a@example.com", `Content-Type: multipart/related; boundary="B"`), "a@example.com")
	f.Add(msg("x", hFrom, "To: g: a@example.com, b@example.com;", "Cc: c@example.com"), "c@example.com,B@example.com")
	f.Fuzz(func(t *testing.T, raw []byte, rcpts string) {
		env := strings.Split(rcpts, ",")
		m := &mailjet.Message{ID: "q", Rcpts: env, Body: raw, Hints: mailjet.Hints{Priority: 2, Campaign: "c"}}
		c, err := sendapi.Convert(m)
		if err != nil {
			var ue *sendapi.UnsupportedError
			if !errors.As(err, &ue) || ue.Reason == "" {
				t.Fatalf("error is not an UnsupportedError with a reason: %v", err)
			}
			return
		}
		inEnv := map[string]bool{}
		for _, r := range env {
			inEnv[strings.ToLower(strings.TrimSpace(r))] = true
		}
		if len(c.Messages) == 0 || len(c.Messages) > sendapi.MaxMessagesPerCall || len(c.Messages) != len(c.Rcpts) {
			t.Fatalf("%d messages, %d recipient groups", len(c.Messages), len(c.Rcpts))
		}
		covered := make([]int, len(env))
		for _, g := range c.Rcpts {
			for _, i := range g {
				covered[i]++
			}
		}
		for i, n := range covered {
			if n != 1 {
				t.Fatalf("envelope recipient %d (%q) in %d messages", i, env[i], n)
			}
		}
		for _, msg := range c.Messages {
			checkInvariants(t, &msg, inEnv)
		}
	})
}

func checkInvariants(t *testing.T, m *sendapi.Message, inEnv map[string]bool) {
	t.Helper()
	if m.From == nil || len(m.To) == 0 {
		t.Fatalf("From %v To %v", m.From, m.To)
	}
	for _, l := range [][]sendapi.Address{m.To, m.Cc, m.Bcc} {
		if len(l) > sendapi.MaxRcptsPerField {
			t.Fatalf("%d recipients in a field", len(l))
		}
		for _, a := range l {
			if !inEnv[strings.ToLower(strings.TrimSpace(a.Email))] {
				t.Fatalf("sends to %q, not in the envelope", a.Email)
			}
		}
	}
	if m.TextPart == "" && m.HTMLPart == "" && m.TemplateID == 0 {
		t.Fatal("no content")
	}
	for _, s := range []string{m.TextPart, m.HTMLPart, m.Subject} {
		if !utf8.ValidString(s) || strings.Contains(s, "\r\n") {
			t.Fatalf("not UTF-8 with \\n line ends: %q", s)
		}
	}
	if utf8.RuneCountInString(m.Subject) > sendapi.MaxSubjectChars {
		t.Fatal("subject too long")
	}
	if m.Priority != nil && (*m.Priority < 0 || *m.Priority > 3) {
		t.Fatalf("Priority %d", *m.Priority)
	}
	if m.DeduplicateCampaign && m.CustomCampaign == "" {
		t.Fatal("DeduplicateCampaign without CustomCampaign")
	}
	for k, v := range m.Headers {
		if sendapi.IsForbiddenHeader(k) || strings.ContainsAny(k+v, "\r\n") || !utf8.ValidString(v) || v == "" {
			t.Fatalf("header %q: %q", k, v)
		}
	}
	total := 0
	for i, l := range [][]sendapi.Attachment{m.Attachments, m.InlinedAttachments} {
		for _, a := range l {
			data, err := base64.StdEncoding.DecodeString(a.Base64Content)
			if err != nil || a.Filename == "" || a.ContentType == "" || (a.ContentID != "") != (i == 1) ||
				strings.ContainsAny(a.ContentID, "<>") {
				t.Fatalf("attachment %+v: %v", a, err)
			}
			total += len(data)
		}
	}
	if total > sendapi.MaxAttachmentBytes {
		t.Fatalf("%d bytes of attachments", total)
	}
	if _, err := json.Marshal(m); err != nil {
		t.Fatal(err)
	}
}
