package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mjrelay/mjrelay/relay/odoo/odootest"
)

// TestCheckOdoo: `mjrelay check` checks [odoo]: the URL, the login and
// API key, the rights; each failure fails the check with its fix, and the
// API key is never printed.
func TestCheckOdoo(t *testing.T) {
	const key = "odoo-check-key-4b2d9e"
	tests := []struct {
		name    string
		breakIt func(s *odootest.Server, cfg *string)
		code    int
		want    []string
	}{
		{"ok", func(*odootest.Server, *string) {}, 0, []string{"OK    Odoo 17.0 answers", "login relay accepted on database prod", "may process mail (message_process) and write mail.blacklist"}},
		{"wrong url", func(s *odootest.Server, cfg *string) {
			*cfg = strings.Replace(*cfg, s.URL(), s.URL()+"/nothing", 1)
		}, 1, []string{"FAIL", "odoo.url"}},
		{"wrong key", func(s *odootest.Server, _ *string) { s.SetKey("other") }, 1, []string{"FAIL", "refused the login", "New API Key"}},
		{"wrong db", func(s *odootest.Server, cfg *string) { *cfg = strings.Replace(*cfg, `db = "prod"`, `db = "test"`, 1) }, 1,
			[]string{"FAIL", `database "test" does not exist`}},
		{"no blacklist rights", func(s *odootest.Server, _ *string) { s.SetRights(odootest.Rights{Mail: true}) }, 1,
			[]string{"FAIL", "may not create on mail.blacklist, write on mail.blacklist"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := odootest.Start("prod", "relay", key)
			defer s.Close()
			f := newCheckFixture()
			f.extra = fmt.Sprintf("[odoo]\nurl = %q\ndb = \"prod\"\nlogin = \"relay\"\napi_key = %q\n", s.URL(), key)
			tc.breakIt(s, &f.extra)
			code, out := f.run(t, checkSecret)
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s", code, tc.code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, key) {
				t.Errorf("the API key is printed:\n%s", out)
			}
		})
	}
}
