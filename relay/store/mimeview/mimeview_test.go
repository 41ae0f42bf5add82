package mimeview_test

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/mjrelay/mjrelay/relay/store/mimeview"
	"github.com/mjrelay/mjrelay/relay/store/storetest"
)

func rich() storetest.Rich {
	return storetest.NewRich(storetest.RichOptions{From: "invoices@acme.example", To: "mr.x@client.example",
		Remote: "https://tracker.example/pixel.png", Beacon: "https://tracker.example/ran"})
}

func TestParseRich(t *testing.T) {
	r := rich()
	m := mimeview.Parse(r.Raw)
	if len(m.Problems) > 0 {
		t.Errorf("problems: %v", m.Problems)
	}
	if got := m.Get("subject"); got != r.Subject {
		t.Errorf("Subject %q, want %q", got, r.Subject)
	}
	if got := m.Get("From"); got != r.FromName+" <invoices@acme.example>" {
		t.Errorf("From %q", got)
	}
	var names []string
	for _, f := range m.Header {
		names = append(names, f.Name)
	}
	if want := []string{"From", "To", "Subject", "Date", "Message-Id", "MIME-Version", "Content-Type"}; !slices.Equal(names, want) {
		t.Errorf("header fields %v, want %v (in order, as spelled)", names, want)
	}
	if f := m.Header[2]; f.Raw == "" || !strings.HasPrefix(f.Raw, "=?utf-8?b?") {
		t.Errorf("the subject's raw value is not kept: %+v", f)
	}
	type leaf struct {
		id, ct string
		role   mimeview.Role
	}
	var got []leaf
	for _, p := range m.Parts {
		got = append(got, leaf{p.ID, p.ContentType, p.Role})
	}
	want := []leaf{{"1.1.1", "text/plain", mimeview.RoleText}, {"1.1.2", "text/html", mimeview.RoleHTML},
		{r.PNGPart, "image/png", mimeview.RoleInline}, {r.PDFPart, "application/pdf", mimeview.RoleAttachment}}
	if !slices.Equal(got, want) {
		t.Errorf("parts %v, want %v", got, want)
	}
	if text, err := m.Text.Text(); err != nil || text != r.Text {
		t.Errorf("text %q (%v), want %q (from ISO-8859-1)", text, err, r.Text)
	}
	att := m.Attachments()
	if len(att) != 1 || att[0].Filename != r.PDFName || att[0].Size != int64(len(r.PDF)) {
		t.Fatalf("attachments %+v, want %s of %d bytes", att, r.PDFName, len(r.PDF))
	}
	if b, _ := att[0].Bytes(); !bytes.Equal(b, r.PDF) {
		t.Error("the PDF's bytes differ")
	}
	if b, _ := m.Part(r.PNGPart).Bytes(); !bytes.Equal(b, r.PNG) {
		t.Error("the PNG's bytes differ")
	}
	html, err := m.InlineHTML(1 << 20)
	if err != nil || strings.Contains(html, "cid:logo") || !strings.Contains(html, `src="data:image/png;base64,`) {
		t.Errorf("inline HTML (%v): cid not replaced by data: %.300s", err, html)
	}
	if html, _ := m.InlineHTML(10); !strings.Contains(html, "cid:logo@acme.example") {
		t.Error("an image over the budget was inlined")
	}
	if n := mimeview.CountAttachments(r.Raw); n != 1 {
		t.Errorf("CountAttachments = %d", n)
	}
}

func TestParseShapes(t *testing.T) {
	tests := []struct {
		name     string
		raw      string
		parts    string // id:type:role, space-separated
		problems bool
	}{
		{"no MIME at all", "Subject: hi\r\n\r\nhello\r\n", "1:text/plain:text", false},
		{"no header", "\r\nhello", "1:text/plain:text", false},
		{"bare LF", "Subject: hi\n\nhello\n", "1:text/plain:text", false},
		{"html only", "Content-Type: text/html\r\n\r\n<p>x</p>", "1:text/html:html", false},
		{"unreadable content type", "Content-Type: ;;\r\n\r\nx", "1:application/octet-stream:attachment", false},
		{"multipart without boundary", "Content-Type: multipart/mixed\r\n\r\nx", "1:application/octet-stream:attachment", true},
		{"no closing delimiter", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b\r\nContent-Type: text/csv\r\n\r\ntwo",
			"1:text/plain:text 2:text/csv:attachment", false},
		{"second text part is an attachment", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b\r\n\r\ntwo\r\n--b--",
			"1:text/plain:text 2:text/plain:attachment", false},
		{"a named text part is an attachment", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; name=a.txt\r\n\r\none\r\n--b--",
			"1:text/plain:attachment", false},
		{"forwarded message is one part", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: x\r\n\r\ny\r\n--b--",
			"1:message/rfc822:attachment", false},
		{"unknown encoding", "Content-Transfer-Encoding: x-uue\r\n\r\nbegin", "1:text/plain:text", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := mimeview.Parse([]byte(tc.raw))
			var got []string
			for _, p := range m.Parts {
				got = append(got, fmt.Sprintf("%s:%s:%s", p.ID, p.ContentType, p.Role))
			}
			if strings.Join(got, " ") != tc.parts {
				t.Errorf("parts %v, want %s", got, tc.parts)
			}
			if (len(m.Problems) > 0) != tc.problems {
				t.Errorf("problems %v", m.Problems)
			}
		})
	}
}

func TestDecoding(t *testing.T) {
	raw := "Subject: =?iso-8859-1?q?caf=E9?= and =?utf-8?b?8J+Ygg==?=\r\n" +
		"From: =?windows-1252?q?Ren=E9e?= <r@x.example>\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain; charset=windows-1252\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		"Q2Fm6SCA\r\n--b\r\nContent-Type: application/octet-stream; name=\"=?utf-8?q?r=C3=A9sum=C3=A9.txt?=\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\nYW\r\nJj\r\nZA=\r\n=\r\n--b\r\n" +
		"Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"../../etc/passwd\"\r\n\r\nx\r\n--b--\r\n"
	m := mimeview.Parse([]byte(raw))
	if s := m.Get("Subject"); s != "café and 😂" {
		t.Errorf("subject %q", s)
	}
	if s := m.Get("From"); s != "Renée <r@x.example>" {
		t.Errorf("from %q", s)
	}
	if s, err := m.Text.Text(); s != "Café €" || err != nil {
		t.Errorf("text %q, %v", s, err)
	}
	a := m.Attachments()
	if len(a) != 2 || a[0].Filename != "résumé.txt" || a[0].Size != 4 || a[1].Filename != "passwd" {
		t.Fatalf("attachments %+v", a)
	}
	if b, _ := a[0].Bytes(); string(b) != "abcd" {
		t.Errorf("base64 over lines and stray padding: %q", b)
	}
}

// TestHostile: the bounds hold, and what is left out is said.
func TestHostile(t *testing.T) {
	var deep strings.Builder
	for i := range 200 {
		fmt.Fprintf(&deep, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i)
	}
	deep.WriteString("\r\nleaf\r\n")
	var many strings.Builder
	many.WriteString("Content-Type: multipart/mixed; boundary=b\r\n\r\n")
	for range 10000 {
		many.WriteString("--b\r\nContent-Type: image/gif\r\n\r\nGIF89a\r\n")
	}
	fields := "Subject: x\r\n" + strings.Repeat("X-A: b\r\n", 50000) + "\r\nbody"
	bigHeader := "Subject: " + strings.Repeat("a", mimeview.MaxHeaderBytes+100) + "\r\n\r\nbody"
	tests := []struct {
		name  string
		raw   string
		check func(*mimeview.Message) bool
	}{
		{"deep nesting", deep.String(), func(m *mimeview.Message) bool {
			return len(m.Parts) == 1 && m.Parts[0].ContentType == "application/octet-stream" && strings.Count(m.Parts[0].ID, ".") == mimeview.MaxDepth-1
		}},
		{"many parts", many.String(), func(m *mimeview.Message) bool { return len(m.Parts) == mimeview.MaxParts-1 }},
		{"many fields", fields, func(m *mimeview.Message) bool { return len(m.Header) == mimeview.MaxFields }},
		{"huge header", bigHeader, func(m *mimeview.Message) bool { return len(m.Parts) == 1 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := mimeview.Parse([]byte(tc.raw))
			if !tc.check(m) {
				t.Errorf("%d parts, %d fields, problems %v", len(m.Parts), len(m.Header), m.Problems)
			}
			if len(m.Problems) == 0 {
				t.Error("nothing said of what was left out")
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add(rich().Raw)
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: multipart/related; boundary=c\r\n\r\n--c\r\n\r\nx\r\n--c--\r\n--b--"))
	f.Add([]byte("Content-Type: text/html; charset=koi8-r\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<img src=cid:a%40b>=C1"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m := mimeview.Parse(raw)
		if len(m.Parts) > mimeview.MaxParts || len(m.Header) > mimeview.MaxFields {
			t.Fatalf("%d parts, %d fields", len(m.Parts), len(m.Header))
		}
		for _, p := range m.Parts {
			b, _ := p.Bytes()
			if int64(len(b)) > int64(len(raw)) {
				t.Fatalf("part %s decodes to more than the message", p.ID)
			}
		}
		m.InlineHTML(1 << 20)
	})
}

// BenchmarkParse: an Odoo invoice (storetest.NewRich), and a message with a
// 10 MiB attachment (what the message page and the store's attachment
// count cost per message).
func BenchmarkParse(b *testing.B) {
	big := []byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n" +
		"--b\r\nContent-Type: application/pdf; name=big.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		strings.Repeat(strings.Repeat("QUJD", 19)+"\r\n", 10<<20/57) + "--b--\r\n")
	for _, tc := range []struct {
		name string
		raw  []byte
	}{{"invoice", rich().Raw}, {"10MiB-attachment", big}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.raw)))
			for b.Loop() {
				if n := len(mimeview.Parse(tc.raw).Attachments()); n != 1 {
					b.Fatal(n)
				}
			}
		})
		b.Run(tc.name+"/count", func(b *testing.B) {
			b.SetBytes(int64(len(tc.raw)))
			for b.Loop() {
				if n := mimeview.CountAttachments(tc.raw); n != 1 {
					b.Fatal(n)
				}
			}
		})
	}
}
