package webhook

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

func TestSplitter(t *testing.T) {
	big := `{"event":"bounce","comment":"` + strings.Repeat("x", MaxEventBytes) + `"}`
	tests := []struct {
		name    string
		body    string
		want    []string // "<oversize>" for an element over MaxEventBytes
		wantErr error    // nil: ends with io.EOF; errAny: some error
	}{
		{"array", `[{"a":1},{"b":"x]}\"{"}]`, []string{`{"a":1}`, `{"b":"x]}\"{"}`}, nil},
		{"spaces and newlines", " \r\n[ {\"a\" : [1, {}]} ,\n\t{} ]\n", []string{`{"a" : [1, {}]}`, `{}`}, nil},
		{"one object", ` {"event":"sent"} `, []string{`{"event":"sent"}`}, nil},
		{"empty array", `[ ]`, nil, nil},
		{"scalars", `[1, "a,]", null, [], true,-2.5e3]`, []string{`1`, `"a,]"`, `null`, `[]`, `true`, `-2.5e3`}, nil},
		{"oversized element skipped whole", `[` + big + `,{"b":1}]`, []string{"<oversize>", `{"b":1}`}, nil},
		{"element of exactly the limit", `[` + big[:MaxEventBytes-2] + `"}]`, []string{big[:MaxEventBytes-2] + `"}`}, nil},
		{"missing comma", `[{"a":1} {"b":2}]`, []string{`{"a":1}`}, errAny},
		{"trailing comma", `[{"a":1},]`, []string{`{"a":1}`}, errAny},
		{"leading comma", `[,{"a":1}]`, nil, errAny},
		{"cut short", `[{"a":1},{"b":"`, []string{`{"a":1}`}, io.ErrUnexpectedEOF},
		{"unclosed array", `[{"a":1}`, []string{`{"a":1}`}, io.ErrUnexpectedEOF},
		{"stray bracket", `[}]`, nil, errAny},
		{"empty", ``, nil, errEmptyPayload},
		{"form data", `event=sent&CustomID=x`, nil, errAny},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// One byte per read: element boundaries never depend on buffering.
			sp := newSplitter(iotest.OneByteReader(strings.NewReader(tc.body)))
			var got []string
			var err error
			for {
				var raw []byte
				var over bool
				if raw, over, err = sp.next(); err != nil {
					break
				}
				if over {
					got = append(got, "<oversize>")
				} else {
					got = append(got, string(raw))
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("elements %.80q, want %.80q", got, tc.want)
			}
			switch {
			case tc.wantErr == nil && err != io.EOF:
				t.Errorf("ended with %v, want io.EOF", err)
			case tc.wantErr == errAny && (err == io.EOF || err == nil):
				t.Errorf("ended with %v, want a syntax error", err)
			case tc.wantErr != nil && tc.wantErr != errAny && !errors.Is(err, tc.wantErr):
				t.Errorf("ended with %v, want %v", err, tc.wantErr)
			}
			if _, _, again := sp.next(); err == io.EOF && again != io.EOF {
				t.Errorf("after the end: %v", again)
			}
		})
	}
}

var errAny = errors.New("any error")
