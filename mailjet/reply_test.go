package mailjet

import (
	"encoding/json"
	"testing"
)

func TestReply(t *testing.T) {
	tests := []struct {
		in   string
		want Reply
		out  string // String(), when it differs from in
	}{
		{"550 5.1.1 No such user", Reply{550, "5.1.1", "No such user"}, ""},
		{"250 OK queued as 1ab2", Reply{250, "", "OK queued as 1ab2"}, ""},
		{"250 2.0.0 OK", Reply{250, "2.0.0", "OK"}, ""},
		{"421-4.7.0 try later", Reply{421, "4.7.0", "try later"}, "421 4.7.0 try later"},
		{"451", Reply{451, "", ""}, ""},
		{"550 4.1.1 mismatched class", Reply{550, "", "4.1.1 mismatched class"}, ""},
		{"connection error: EOF", Reply{0, "", "connection error: EOF"}, ""},
		{"HTTP 401 authentication failed", Reply{0, "", "HTTP 401 authentication failed"}, ""},
		{"2500 not a code", Reply{0, "", "2500 not a code"}, ""},
		{"", Reply{}, ""},
	}
	for _, tc := range tests {
		got := ParseReply(tc.in)
		if got != tc.want {
			t.Errorf("ParseReply(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		out := tc.out
		if out == "" {
			out = tc.in
		}
		if s := got.String(); s != out {
			t.Errorf("%+v.String() = %q, want %q", got, s, out)
		}
		j, _ := json.Marshal(struct {
			R Reply `json:"r,omitzero"`
		}{got})
		var back struct{ R Reply }
		if err := json.Unmarshal(j, &back); err != nil || back.R != got {
			t.Errorf("JSON %s came back as %+v, %v", j, back.R, err)
		}
	}
	if c := (Reply{Code: 554}).CodeText(); c != "554" {
		t.Errorf("CodeText = %q", c)
	}
	if c := (Reply{Text: "x"}).CodeText(); c != "none" {
		t.Errorf("CodeText without code = %q", c)
	}
}
