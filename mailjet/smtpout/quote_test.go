package smtpout

import "testing"

func TestQuoteLocal(t *testing.T) {
	tests := []struct{ in, want string }{
		{"john@example.com", "john@example.com"},
		{"john.doe+tag@example.com", "john.doe+tag@example.com"},
		{"jürgen@example.de", "jürgen@example.de"},
		{"x;(y)@example.org", `"x;(y)"@example.org`},
		{`a"b\c@example.org`, `"a\"b\\c"@example.org`},
		{".lead@example.org", `".lead"@example.org`},
		{"two..dots@example.org", `"two..dots"@example.org`},
		{"no-at", "no-at"},
	}
	for _, tc := range tests {
		if got := quoteLocal(tc.in); got != tc.want {
			t.Errorf("quoteLocal(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
