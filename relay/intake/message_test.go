package intake

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestParseHeader(t *testing.T) {
	tests := []struct {
		msg                  string
		from, subject, msgID string
	}{
		{"From: \"Jöhn\" <john@example.com>\r\nSubject: =?utf-8?q?Facture_n=C2=B042?=\r\nMessage-Id: <1.2@odoo>\r\n\r\nbody\r\n",
			"john@example.com", "Facture n°42", "<1.2@odoo>"},
		{"From: =?iso-8859-1?q?J=F6rg?= <jorg@example.de>, other@example.de\r\nSubject: caf\xc3\xa9\r\n\r\n", "jorg@example.de", "café", ""},
		{"Subject: no from\r\n\r\n", "", "no from", ""},
		{"From: not an address\r\n\r\n", "", "", ""},
		{"garbage without header end", "", "", ""},
	}
	for _, tc := range tests {
		h := ParseHeader([]byte(tc.msg))
		if h.From != tc.from || h.Subject != tc.subject || h.MessageID != tc.msgID {
			t.Errorf("ParseHeader(%q) = %+v", tc.msg, h)
		}
	}
}

func TestReceivedHeader(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		tls, auth, utf8 bool
		rcpts           []string
		want            string
	}{
		{true, true, false, []string{"a@x.org"}, "with ESMTPSA id Q1\r\n\tfor <a@x.org>;"},
		{false, false, false, []string{"a@x.org", "b@x.org"}, "with ESMTP id Q1;"},
		{true, false, true, nil, "with UTF8SMTPS id Q1;"},
	}
	for _, tc := range tests {
		h := string(receivedHeader("odoo (evil); x", "192.0.2.1", "relay.test", "Q1", tc.tls, tc.auth, tc.utf8, tc.rcpts, now))
		if !strings.HasPrefix(h, "Received: from odoo__evil___x ([192.0.2.1])\r\n\tby relay.test (mjrelay) ") ||
			!strings.Contains(h, tc.want) || !strings.HasSuffix(h, "Tue, 24 Nov 2026 12:00:00 +0000\r\n") {
			t.Errorf("receivedHeader = %q, want it to contain %q", h, tc.want)
		}
	}
}

func TestFramed(t *testing.T) {
	body := []byte("Subject: x\r\n\r\nhi\r\n")
	inBuf := func() []byte { return append(make([]byte, TraceRoom), body...) }
	long := bytes.Repeat([]byte("x"), TraceRoom+1)
	tests := []struct {
		name       string
		buf        []byte
		msg        func(buf []byte) []byte
		trace      []byte
		wantShared bool
	}{
		{"the body in the buffer: the trace goes into the room", inBuf(), func(b []byte) []byte { return b[TraceRoom:] }, []byte("Received: r\r\n"), true},
		{"a normalized copy of the body", inBuf(), func([]byte) []byte { return bytes.Clone(body) }, []byte("Received: r\r\n"), false},
		{"a trace longer than the room", inBuf(), func(b []byte) []byte { return b[TraceRoom:] }, long, false},
		{"an empty body", make([]byte, TraceRoom), func(b []byte) []byte { return b[TraceRoom:] }, []byte("Received: r\r\n"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg := tc.msg(tc.buf)
			want := append(append([]byte(nil), tc.trace...), msg...)
			got, shared := framed(tc.buf, msg, tc.trace)
			if !bytes.Equal(got, want) || shared != tc.wantShared {
				t.Fatalf("framed = %q, shared %v; want %q, shared %v", got, shared, want, tc.wantShared)
			}
		})
	}
}
