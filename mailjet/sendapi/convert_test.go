package sendapi_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/mailjet/sendapi"
)

// msg joins header lines and a body with CRLF.
func msg(body string, headers ...string) []byte {
	h := strings.Join(headers, "\r\n")
	return []byte(h + "\r\n\r\n" + strings.ReplaceAll(body, "\n", "\r\n"))
}

const (
	hFrom = "From: Shop <shop@example.com>"
	hTo   = "To: Zoe <zoe@example.org>"
)

func multipart(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString("--B\n" + p + "\n")
	}
	b.WriteString("--B--\n")
	return b.String()
}

func TestConvert(t *testing.T) {
	type check func(t *testing.T, c *sendapi.Converted)
	one := func(f func(t *testing.T, m *sendapi.Message)) check {
		return func(t *testing.T, c *sendapi.Converted) {
			if len(c.Messages) != 1 {
				t.Fatalf("%d messages", len(c.Messages))
			}
			f(t, &c.Messages[0])
		}
	}
	pdf := base64.StdEncoding.EncodeToString([]byte("%PDF-1.4 \x00\x01\xff"))
	big := strings.Repeat(base64.StdEncoding.EncodeToString(make([]byte, 57))+"\n", (15<<20)/57+1)
	tests := []struct {
		name    string
		body    []byte
		rcpts   []string
		hints   mailjet.Hints
		wantErr string
		check   check
	}{
		{name: "reply-to with two addresses is kept as a header",
			body: msg("hi\n", hFrom, hTo, "Reply-To: a@example.com, b@example.com"),
			check: one(func(t *testing.T, m *sendapi.Message) {
				if m.ReplyTo != nil || m.Headers["Reply-To"] != "a@example.com, b@example.com" {
					t.Fatalf("ReplyTo %v Headers %v", m.ReplyTo, m.Headers)
				}
			})},
		{name: "hint priority -1 leaves Priority unset; queue id is CustomID",
			body: msg("hi\n", hFrom, hTo), hints: mailjet.Hints{Priority: -1},
			check: one(func(t *testing.T, m *sendapi.Message) {
				if m.Priority != nil || m.CustomID != "q1" || m.CustomCampaign != "" {
					t.Fatalf("Priority %v CustomID %q", m.Priority, m.CustomID)
				}
			})},
		{name: "hint priority 0 is sent",
			body: msg("hi\n", hFrom, hTo), hints: mailjet.Hints{Priority: 0, Campaign: "c"},
			check: one(func(t *testing.T, m *sendapi.Message) {
				if m.Priority == nil || *m.Priority != 0 || m.CustomCampaign != "c" {
					t.Fatalf("Priority %v campaign %q", m.Priority, m.CustomCampaign)
				}
			})},
		{name: "invalid client priority falls back to the hint",
			body: msg("hi\n", hFrom, hTo, "X-Mailjet-Prio: high"), hints: mailjet.Hints{Priority: 1},
			check: one(func(t *testing.T, m *sendapi.Message) {
				if m.Priority == nil || *m.Priority != 1 {
					t.Fatalf("Priority %v", m.Priority)
				}
			})},
		{name: "DeduplicateCampaign without a campaign is dropped",
			body: msg("hi\n", hFrom, hTo, "X-Mailjet-DeduplicateCampaign: y"), hints: mailjet.Hints{Priority: -1},
			check: one(func(t *testing.T, m *sendapi.Message) {
				if m.DeduplicateCampaign {
					t.Fatal("DeduplicateCampaign sent without CustomCampaign")
				}
			})},
		{name: "DeduplicateCampaign with the hint's campaign",
			body: msg("hi\n", hFrom, hTo, "X-Mailjet-DeduplicateCampaign: true"), hints: mailjet.Hints{Priority: -1, Campaign: "lane"},
			check: one(func(t *testing.T, m *sendapi.Message) {
				if !m.DeduplicateCampaign || m.CustomCampaign != "lane" {
					t.Fatalf("dedup %v campaign %q", m.DeduplicateCampaign, m.CustomCampaign)
				}
			})},
		{name: "Cc moves to To when no envelope recipient is in To",
			body:  msg("hi\n", hFrom, "To: outsider@example.net", "Cc: Carla <carla@example.com>, c2@example.com"),
			rcpts: []string{"c2@example.com", "carla@example.com", "blind@example.com"},
			check: one(func(t *testing.T, m *sendapi.Message) {
				want := []sendapi.Address{{Email: "carla@example.com", Name: "Carla"}, {Email: "c2@example.com"}}
				if !reflect.DeepEqual(m.To, want) || m.Cc != nil || len(m.Bcc) != 1 || m.Bcc[0].Email != "blind@example.com" {
					t.Fatalf("To %v Cc %v Bcc %v", m.To, m.Cc, m.Bcc)
				}
			})},
		{name: "only blind recipients: one copy each",
			body:  msg("hi\n", hFrom, "To: undisclosed-recipients:;"),
			rcpts: []string{"b1@example.com", "b2@example.com", "B1@example.com"},
			check: func(t *testing.T, c *sendapi.Converted) {
				if len(c.Messages) != 2 || c.Messages[0].To[0].Email != "b1@example.com" || c.Messages[1].To[0].Email != "b2@example.com" ||
					c.Messages[0].Bcc != nil || c.Messages[1].Cc != nil {
					t.Fatalf("%+v", c.Messages)
				}
				if !reflect.DeepEqual(c.Rcpts, [][]int{{0, 2}, {1}}) {
					t.Fatalf("Rcpts %v", c.Rcpts)
				}
			}},
		{name: "duplicate envelope recipients are sent once and both get the result",
			body: msg("hi\n", hFrom, hTo), rcpts: []string{"zoe@example.org", "ZOE@example.org"},
			check: func(t *testing.T, c *sendapi.Converted) {
				if len(c.Messages[0].To) != 1 || c.Messages[0].Bcc != nil || !reflect.DeepEqual(c.Rcpts, [][]int{{0, 1}}) {
					t.Fatalf("%+v %v", c.Messages[0], c.Rcpts)
				}
			}},
		{name: "more than 50 To recipients",
			body:  msg("hi\n", hFrom, "To: "+strings.Join(numbered("t%d@example.com", 51), ", ")),
			rcpts: numbered("t%d@example.com", 51), wantErr: "51 To recipients"},
		{name: "calendar without disposition and a second html part are attachments",
			body: msg(multipart("Content-Type: text/html; charset=utf-8\n\n<p>one</p>",
				"Content-Type: text/calendar; method=REQUEST; charset=utf-8\n\nBEGIN:VCALENDAR",
				"Content-Type: text/html\n\n<p>two</p>"),
				hFrom, hTo, `Content-Type: multipart/mixed; boundary="B"`),
			check: one(func(t *testing.T, m *sendapi.Message) {
				if m.HTMLPart != "<p>one</p>" || m.TextPart != "" || len(m.Attachments) != 2 {
					t.Fatalf("html %q text %q atts %+v", m.HTMLPart, m.TextPart, m.Attachments)
				}
				a := m.Attachments[0]
				if a.ContentType != "text/calendar; charset=utf-8; method=REQUEST" || a.Filename != "attachment-1.ics" {
					t.Fatalf("%+v", a)
				}
				if m.Attachments[1].Filename != "attachment-2.html" {
					t.Fatalf("%+v", m.Attachments[1])
				}
			})},
		{name: "cid image: inline outside related is inlined, attachment in mixed is not",
			body: msg(multipart("Content-Type: text/html\n\n<img src=cid:a>",
				"Content-Type: image/png\nContent-Disposition: inline\nContent-ID: <a>\nContent-Transfer-Encoding: base64\n\n"+pdf,
				"Content-Type: image/png; name=\"=?utf-8?q?b=C3=A9.png?=\"\nContent-Disposition: attachment\nContent-ID: <b>\nContent-Transfer-Encoding: base64\n\n"+pdf),
				hFrom, hTo, `Content-Type: multipart/mixed; boundary="B"`),
			check: one(func(t *testing.T, m *sendapi.Message) {
				if len(m.InlinedAttachments) != 1 || m.InlinedAttachments[0].ContentID != "a" || m.InlinedAttachments[0].Filename != "inline-1.png" {
					t.Fatalf("inlined %+v", m.InlinedAttachments)
				}
				if len(m.Attachments) != 1 || m.Attachments[0].ContentID != "" || m.Attachments[0].Filename != "bé.png" ||
					m.Attachments[0].ContentType != "image/png" ||
					m.Attachments[0].Base64Content != pdf {
					t.Fatalf("attachments %+v", m.Attachments)
				}
			})},
		{name: "message/rfc822 is an attachment",
			body: msg(multipart("Content-Type: text/plain\n\nsee attached",
				"Content-Type: message/rfc822\n\nSubject: inner\n\ninner body"),
				hFrom, hTo, `Content-Type: multipart/mixed; boundary="B"`),
			check: one(func(t *testing.T, m *sendapi.Message) {
				if len(m.Attachments) != 1 || m.Attachments[0].ContentType != "message/rfc822" || m.TextPart != "see attached" {
					t.Fatalf("%+v", m)
				}
			})},
		{name: "8-bit body without a charset is made valid UTF-8",
			body: msg("caf\xe9 ok\n", hFrom, hTo),
			check: one(func(t *testing.T, m *sendapi.Message) {
				if m.TextPart != "caf\uFFFD ok\n" {
					t.Fatalf("%q", m.TextPart)
				}
			})},
		{name: "template without a body part",
			body: msg("", hFrom, hTo, "X-MJ-TemplateID: 4242", "X-MJ-TemplateLanguage: True",
				`X-MJ-Vars: {"a": [1, 2]}`, "X-MJ-TemplateErrorReporting: Dev <dev@example.com>",
				"X-MJ-TemplateErrorDeliver: deliver"),
			check: one(func(t *testing.T, m *sendapi.Message) {
				if m.TemplateID != 4242 || !m.TemplateLanguage || string(m.Variables) != `{"a": [1, 2]}` ||
					m.TemplateErrorReporting == nil || m.TemplateErrorReporting.Email != "dev@example.com" || !m.TemplateErrorDeliver {
					t.Fatalf("%+v", m)
				}
			})},
		{name: "template error reporting needs template language",
			body: msg("x", hFrom, hTo, "X-MJ-TemplateErrorReporting: dev@example.com", "X-MJ-Vars: not json"),
			check: one(func(t *testing.T, m *sendapi.Message) {
				if m.TemplateErrorReporting != nil || m.Variables != nil {
					t.Fatalf("%+v", m)
				}
			})},
		{name: "forbidden, mapped and structural headers are not in Headers; first duplicate wins",
			body: msg("x", hFrom, hTo, "Sender: s@example.com", "List-Id: <l.example.com>", "X-Mailer: Odoo",
				"Message-ID: <a@b>", "MIME-Version: 1.0", "Content-Type: text/plain", "x-custom: one",
				"X-Custom: two", "X-Mailjet-TrackOpen: 7", "ARC-Seal: i=1; cv=none; d=x", "X-Empty:", "X-Crlf: =?utf-8?q?a=0D=0Ab?="),
			check: one(func(t *testing.T, m *sendapi.Message) {
				want := map[string]string{"x-custom": "one", "X-Crlf": "a b"}
				if !reflect.DeepEqual(m.Headers, want) || m.TrackOpens != "" {
					t.Fatalf("Headers %q TrackOpens %q", m.Headers, m.TrackOpens)
				}
			})},
		{name: "unknown charset", body: msg("x", hFrom, hTo, "Content-Type: text/plain; charset=x-klingon"),
			wantErr: `unknown charset "x-klingon"`},
		{name: "corrupt base64", body: msg("!!!!", hFrom, hTo, "Content-Transfer-Encoding: base64"),
			wantErr: "cannot decode"},
		{name: "unknown transfer encoding", body: msg("x", hFrom, hTo, "Content-Transfer-Encoding: x-uuencode"),
			wantErr: "unknown Content-Transfer-Encoding"},
		{name: "no From", body: msg("x", hTo), wantErr: "no From header"},
		{name: "two From addresses", body: msg("x", "From: a@example.com, b@example.com", hTo), wantErr: "exactly one"},
		{name: "bad To header", body: msg("x", hFrom, "To: <<<"), wantErr: "cannot parse the To header"},
		{name: "subject over 255 characters",
			body: msg("x", hFrom, hTo, "Subject: "+strings.Repeat("é", 256)), wantErr: "subject is longer"},
		{name: "multipart without boundary", body: msg("x", hFrom, hTo, "Content-Type: multipart/mixed"),
			wantErr: "without a boundary"},
		{name: "unparseable content type is not a body", body: msg("x", hFrom, hTo, "Content-Type: ;;;"),
			wantErr: "no text/plain or text/html body part"},
		{name: "signed part nested in mixed",
			body: msg(multipart("Content-Type: multipart/signed; boundary=C\n\n--C\n\nx\n--C--"),
				hFrom, hTo, `Content-Type: multipart/mixed; boundary="B"`),
			wantErr: "multipart/signed"},
		{name: "a p7m attachment is fine",
			body: msg(multipart("Content-Type: text/plain\n\nx",
				"Content-Type: application/pkcs7-mime\nContent-Disposition: attachment; filename=a.p7m\n\nxx"),
				hFrom, hTo, `Content-Type: multipart/mixed; boundary="B"`),
			check: one(func(t *testing.T, m *sendapi.Message) {
				if len(m.Attachments) != 1 || m.Attachments[0].Filename != "a.p7m" {
					t.Fatalf("%+v", m.Attachments)
				}
			})},
		{name: "attachments over 15 MB",
			body: msg(multipart("Content-Type: text/plain\n\nx",
				"Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"+big),
				hFrom, hTo, `Content-Type: multipart/mixed; boundary="B"`),
			wantErr: "15 MB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rcpts := tt.rcpts
			if rcpts == nil {
				rcpts = []string{"zoe@example.org"}
			}
			hints := tt.hints
			if hints == (mailjet.Hints{}) {
				hints.Priority = -1
			}
			c, err := sendapi.Convert(&mailjet.Message{ID: "q1", Rcpts: rcpts, Body: tt.body, Hints: hints})
			if tt.wantErr != "" {
				var ue *sendapi.UnsupportedError
				if !errors.As(err, &ue) || !strings.Contains(ue.Reason, tt.wantErr) {
					t.Fatalf("err %v, want unsupported with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func numbered(format string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(format, i)
	}
	return out
}
