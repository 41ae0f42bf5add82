package mailjet_test

import (
	"testing"

	"github.com/mjrelay/mjrelay/mailjet"
)

func TestHeaderValue(t *testing.T) {
	msg := []byte("Received: from x\r\n\tby y\r\nx-mailjet-prio:  0 \r\nSubject: a\r\n folded\r\n\r\nX-MJ-CustomID: in-body\r\n")
	tests := []struct {
		name, want string
		ok         bool
	}{
		{"X-Mailjet-Prio", "0", true},
		{"Subject", "a folded", true},
		{"Received", "from x\tby y", true},
		{"X-MJ-CustomID", "", false},
		{"By", "", false},
	}
	for _, tc := range tests {
		if v, ok := mailjet.HeaderValue(msg, tc.name); v != tc.want || ok != tc.ok {
			t.Errorf("HeaderValue(%s) = %q, %v", tc.name, v, ok)
		}
	}
}

func TestHintHeaders(t *testing.T) {
	tests := []struct {
		body  string
		hints mailjet.Hints
		want  string
	}{
		{"Subject: x\r\n\r\nb", mailjet.Hints{Priority: 2}, "X-Mailjet-Prio: 2\r\nX-MJ-CustomID: Q1\r\n"},
		{"X-Mailjet-Prio: 0\r\n\r\nb", mailjet.Hints{Priority: 1, Campaign: "odoo-x-mailing-3"}, "X-MJ-CustomID: Q1\r\nX-Mailjet-Campaign: odoo-x-mailing-3\r\n"},
		{"X-MJ-CustomID: mine\r\nX-Mailjet-Campaign: c\r\n\r\nb", mailjet.Hints{Priority: -1, Campaign: "odoo"}, ""},
	}
	for _, tc := range tests {
		got := string(mailjet.HintHeaders(&mailjet.Message{ID: "Q1", Body: []byte(tc.body), Hints: tc.hints}))
		if got != tc.want {
			t.Errorf("HintHeaders(%q, %+v) = %q, want %q", tc.body, tc.hints, got, tc.want)
		}
	}
}
