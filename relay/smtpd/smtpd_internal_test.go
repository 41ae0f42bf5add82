package smtpd

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func TestNormalizeEOL(t *testing.T) {
	tests := []struct {
		in, want string
		err      bool
	}{
		{"a\r\nb\r\n", "a\r\nb\r\n", false},
		{"a\nb\n", "a\r\nb\r\n", false},
		{"a\r\nb\nc\r\n", "a\r\nb\r\nc\r\n", false},
		{"\n.\r\nMAIL FROM:<x@y>\r\n", "\r\n.\r\nMAIL FROM:<x@y>\r\n", false}, // stays in the body; dot-stuffed when sent
		{"a\r.\r\n", "", true},
		{"a\r", "", true},
		{"", "", false},
	}
	for _, tc := range tests {
		got, err := normalizeEOL([]byte(tc.in))
		if (err != nil) != tc.err || (!tc.err && string(got) != tc.want) {
			t.Errorf("normalizeEOL(%q) = %q, %v; want %q, err=%v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestCheckAddress(t *testing.T) {
	tests := []struct {
		addr string
		ok   bool
	}{
		{"john@example.com", true},
		{"noreply@odoo.com", true},
		{"jürgen@exämple.de", true},
		{"a@[127.0.0.1]", true},
		{"a@[IPv6:::1]", true},
		{`"odd%name"@example.com`, true},
		{"user%victim.example@example.org", false},
		{"host!user@example.org", false},
		{"root@localhost", false},
		{"a@-bad.example", false},
		{"a@bad..example", false},
		{"a@[999.1.1.1]", false},
		{"@example.com", false},
		{"nobody@", false},
		{"a\tb@example.com", false},
		{strings.Repeat("l", 65) + "@example.com", false},
	}
	for _, tc := range tests {
		if err := checkAddress(tc.addr); (err == nil) != tc.ok {
			t.Errorf("checkAddress(%q) = %v, want ok=%v", tc.addr, err, tc.ok)
		}
	}
}

func TestAuthAllowed(t *testing.T) {
	lo, remote := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.0.2.7")
	tests := []struct {
		tls      bool
		ip       netip.Addr
		insecure bool
		want     bool
	}{
		{false, lo, false, true},
		{false, netip.MustParseAddr("::1"), false, true},
		{false, remote, false, false},
		{true, remote, false, true},
		{false, remote, true, true},
	}
	for _, tc := range tests {
		if got := authAllowed(tc.tls, tc.ip, tc.insecure); got != tc.want {
			t.Errorf("authAllowed(%v, %v, %v) = %v", tc.tls, tc.ip, tc.insecure, got)
		}
	}
}

func TestAuthFailedText(t *testing.T) {
	tests := []struct {
		user, reason, says string
	}{
		{"odoo", "bad_credentials", "use an mjrelay login from [[smtp.users]] (mjrelay hash-password), not the Mailjet API key"},
		{"0123456789abcdef0123456789ABCDEF", "mailjet_key_as_login", "this user name is a Mailjet API key"},
		{"0123456789abcdef0123456789abcde", "bad_credentials", "not the Mailjet API key"},  // 31 digits
		{"0123456789abcdef0123456789abcdeg", "bad_credentials", "not the Mailjet API key"}, // not hex
	}
	for _, tc := range tests {
		reason, msg := authFailedText(tc.user)
		if reason != tc.reason || !strings.HasPrefix(msg, "Authentication failed: ") || !strings.Contains(msg, tc.says) {
			t.Errorf("authFailedText(%q) = %q, %q; want %s saying %q", tc.user, reason, msg, tc.reason, tc.says)
		}
	}
}

// TestBurst: the first of a kind goes out at once; the rest of an interval
// goes out as one at its end, with their count; a quiet interval ends it.
func TestBurst(t *testing.T) {
	type out struct {
		v string
		n int
	}
	var got []out
	var ticks []func()
	b := newBurst(time.Minute, func(v string, n int) { got = append(got, out{v, n}) })
	b.after = func(_ time.Duration, f func()) { ticks = append(ticks, f) }
	tick := func() { f := ticks[0]; ticks = ticks[1:]; f() }
	steps := []struct {
		do   func()
		want []out
	}{
		{func() { b.add("full", "a1") }, []out{{"a1", 1}}},
		{func() { b.add("full", "a2"); b.add("other", "b1"); b.add("full", "a3") }, []out{{"a1", 1}, {"b1", 1}}},
		{tick, []out{{"a1", 1}, {"b1", 1}, {"a3", 2}}}, // the end of full's first interval
		{tick, []out{{"a1", 1}, {"b1", 1}, {"a3", 2}}}, // other's: nothing held, it ends
		{func() { b.add("other", "b2") }, []out{{"a1", 1}, {"b1", 1}, {"a3", 2}, {"b2", 1}}},
		{func() { b.add("full", "a4"); b.flush() }, []out{{"a1", 1}, {"b1", 1}, {"a3", 2}, {"b2", 1}, {"a4", 1}}},
	}
	for i, st := range steps {
		st.do()
		if fmt.Sprint(got) != fmt.Sprint(st.want) {
			t.Fatalf("step %d: %v, want %v", i, got, st.want)
		}
	}
}

func TestUsersCheck(t *testing.T) {
	h, _ := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	u := newUsers([]User{{Username: "odoo", PasswordHash: string(h)}})
	tests := []struct {
		user, pass string
		ok         bool
	}{
		{"odoo", "right", true},
		{"odoo", "right", true}, // from the cache
		{"odoo", "wrong", false},
		{"odoo", "", false},
		{"ODOO", "right", false},
		{"nobody", "right", false},
	}
	for _, tc := range tests {
		if _, ok := u.check(tc.user, tc.pass); ok != tc.ok {
			t.Errorf("check(%q, %q) = %v", tc.user, tc.pass, ok)
		}
	}
}

func TestLoginServer(t *testing.T) {
	var gotUser, gotPass string
	auth := func(u, p string) error { gotUser, gotPass = u, p; return nil }
	// smtplib: initial response with the user name.
	s := &loginServer{auth: auth}
	if ch, done, _ := s.Next([]byte("odoo")); done || string(ch) != "Password:" {
		t.Fatalf("after initial response: %q %v", ch, done)
	}
	if _, done, err := s.Next([]byte("pw")); !done || err != nil || gotUser != "odoo" || gotPass != "pw" {
		t.Fatalf("smtplib flow: done=%v err=%v %q/%q", done, err, gotUser, gotPass)
	}
	// swaks: no initial response.
	s = &loginServer{auth: auth}
	steps := []struct{ in, want string }{{"", "Username:"}, {"u2", "Password:"}}
	for i, st := range steps {
		var in []byte
		if i > 0 {
			in = []byte(st.in)
		}
		if ch, _, _ := s.Next(in); string(ch) != st.want {
			t.Fatalf("step %d: %q", i, ch)
		}
	}
	if _, done, _ := s.Next([]byte("p2")); !done || gotUser != "u2" || gotPass != "p2" {
		t.Fatalf("swaks flow: %q/%q", gotUser, gotPass)
	}
}

func TestTooLargeText(t *testing.T) {
	tests := []struct {
		size, limit int64
		want        string
	}{
		{27 << 20, 25 << 20, "27 MB, the limit is 25 MB"},
		{4718592, 3 << 20, "4.5 MB, the limit is 3 MB"},
		{25<<20 + 1, 25 << 20, "26214401 bytes, the limit is 26214400 bytes"}, // both "25 MB"
		{2001, 2000, "2001 bytes, the limit is 2000 bytes"},
		{900, 512, "900 bytes, the limit is 512 bytes"},
	}
	for _, tc := range tests {
		if got := tooLargeText(tc.size, tc.limit); got != "Message too large: "+tc.want+" (smtp.max_message_size)" {
			t.Errorf("tooLargeText(%d, %d) = %q", tc.size, tc.limit, got)
		}
	}
}
