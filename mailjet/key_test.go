package mailjet

import "testing"

func TestMaskKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"abc", "abc…"},
		{"0123456789abcdef0123456789abcdef", "0123…"},
	} {
		if got := MaskKey(tc.in); got != tc.want {
			t.Errorf("MaskKey(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
