package config_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/mjrelay/mjrelay/relay/config"
)

func TestOdoo(t *testing.T) {
	t.Setenv("ODOO_API_KEY", "")
	c, err := config.Parse(nil)
	if err != nil || c.Odoo.Enabled() || !slices.Equal(c.Odoo.Report, config.OdooReports) {
		t.Fatalf("default: %+v %v", c.Odoo, err)
	}
	const ok = "[odoo]\nurl = \"https://erp.example.com\"\ndb = \"prod\"\nlogin = \"relay\"\napi_key = \"K3Y\"\n"
	if c, err = config.Parse([]byte(ok)); err != nil || !c.Odoo.Enabled() || c.Odoo.APIKey.Reveal() != "K3Y" {
		t.Fatalf("%+v %v", c.Odoo, err)
	}
	t.Setenv("ODOO_API_KEY", "FROMENV")
	c, err = config.Parse([]byte(strings.Replace(ok, "api_key = \"K3Y\"\n", "", 1)))
	if err != nil || c.Odoo.APIKey.Reveal() != "FROMENV" {
		t.Fatalf("ODOO_API_KEY: %v", err)
	}
	t.Setenv("ODOO_API_KEY", "")
	for _, tc := range []struct{ doc, want string }{
		{strings.Replace(ok, "https://erp.example.com", "erp.example.com", 1), "odoo.url"},
		{strings.Replace(ok, "https://erp.example.com", "https://admin:pw@erp.example.com", 1), "odoo.url"},
		{strings.Replace(ok, "db = \"prod\"\n", "", 1), "odoo.db"},
		{strings.Replace(ok, "login = \"relay\"\n", "", 1), "odoo.login"},
		{strings.Replace(ok, "api_key = \"K3Y\"\n", "", 1), "odoo.api_key"},
		{ok + "report = [\"bounce\", \"opens\"]\n", "odoo.report"},
		{ok + "bounce_address = \"bounce\"\n", "odoo.bounce_address"},
		{ok + "timeout = \"0s\"\n", "odoo.timeout"},
		{"[odoo]\ndb = \"prod\"\n", "odoo.url"},
		{ok + "colour = 1\n", "odoo.colour"},
	} {
		if _, err := config.Parse([]byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to name %s", tc.doc, err, tc.want)
		}
	}
	// The key is a secret: logs, JSON and fmt never show it.
	c, _ = config.Parse([]byte(ok))
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("cfg", "odoo", c.Odoo, "key", c.Odoo.APIKey)
	j, _ := json.Marshal(c)
	if out := buf.String() + string(j) + fmt.Sprintf("%v %+v %#v", c, c.Odoo, c.Odoo); strings.Contains(out, "K3Y") {
		t.Fatalf("the Odoo API key was printed: %s", out)
	}
}
