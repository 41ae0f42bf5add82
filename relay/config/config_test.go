package config_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/mjrelay/mjrelay/relay/config"
)

func TestExampleConfigIsSandboxByDefault(t *testing.T) {
	t.Setenv("MJ_APIKEY_PUBLIC", "")
	t.Setenv("MJ_APIKEY_PRIVATE", "")
	c, err := config.Load("../../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Sandbox() || c.SMTP.Listen != "127.0.0.1:2525" || c.Queue.RetryMin.D().String() != "1m0s" ||
		c.Routes.Bulk.Transports[0] != "sandbox" || c.Routes.Transactional.Priority != 2 {
		t.Fatalf("example config: %+v", c)
	}
}

func TestKeysFromEnvironmentSelectSMTP(t *testing.T) {
	t.Setenv("MJ_APIKEY_PUBLIC", "pub")
	t.Setenv("MJ_APIKEY_PRIVATE", "priv-secret")
	c, err := config.Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Sandbox() || c.Mailjet.APIKey != "pub" || c.Mailjet.SecretKey.Reveal() != "priv-secret" {
		t.Fatalf("transport %q", c.Mailjet.Transport)
	}
}

func TestErrors(t *testing.T) {
	t.Setenv("MJ_APIKEY_PUBLIC", "")
	t.Setenv("MJ_APIKEY_PRIVATE", "")
	tests := []struct{ doc, want string }{
		{"bogus = 1", "unknown configuration key bogus"},
		{"[smtp]\nlisten_tsl = \"x\"", "unknown configuration key smtp.listen_tsl"},
		{"[mailjet]\ntransport = \"smtp\"", "needs mailjet.api_key"},
		{"[mailjet]\ntransport = \"pigeon\"", "not one of"},
		{"[mailjet]\nsmtp_tls = \"none\"", "mailjet.smtp_tls"},
		{"[smtp]\ntrusted_networks = [\"10.0.0.0/33\"]", "trusted_networks"},
		{"[smtp]\nproxy_protocol_from = [\"haproxy.local\"]", "smtp.proxy_protocol_from: \"haproxy.local\" is not an address"},
		{"[[smtp.users]]\nusername = \"odoo\"\npassword_hash = \"plain\"", "bcrypt hash"},
		{"[queue]\nretry_min = \"2h\"\nretry_max = \"1h\"", "retry_min"},
		{"[queue]\nretry_min = \"soon\"", "soon"},
		{"[policy]\nsender_check = \"maybe\"", "sender_check"},
		{"[http]\nlisten = \"0.0.0.0:8025\"", "http.users"},
		{"[mailjet]\napi_key = \"k\"\nsecret_key = \"s\"\n[routes.bulk]\ntransports = [\"fax\"]", "routes.bulk.transports"},
		{"[routes.bulk]\npriority = 4", "routes.bulk.priority"},
		{"[routes.bulk]\nflow_delay = \"2m\"", "routes.bulk.flow_delay"},
		{"[routes.transactional]\nflow_backlog = -1", "routes.transactional.flow_backlog"},
		{"[[smtp.users]]\nusername = \"u\"\npassword_hash = \"$2a$04$J9pgQonj1Rf7eqvylTDZy.qjh17rCc0BgWpBnQ47Rpny/EE2gjVia\"\nclass = \"spam\"", "class"},
	}
	for _, tc := range tests {
		_, err := config.Parse([]byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to mention %q", tc.doc, err, tc.want)
		}
	}
}

func TestSecretNeverPrints(t *testing.T) {
	c, err := config.Parse([]byte("[mailjet]\napi_key = \"pub\"\nsecret_key = \"TOPSECRET\"\n[[smtp.users]]\nusername = \"u\"\npassword_hash = \"$2a$04$HASHHASHonj1Rf7eqvylTDZy.qjh17rCc0BgWpBnQ47Rpny/EE2gj\""))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("cfg", "mailjet", c.Mailjet, "users", c.SMTP.Users, "key", c.Mailjet.SecretKey)
	j, _ := json.Marshal(c)
	out := buf.String() + string(j) + fmt.Sprintf("%v %+v %#v", c, c.Mailjet, c.SMTP.Users)
	if strings.Contains(out, "TOPSECRET") || strings.Contains(out, "HASHHASH") {
		t.Fatalf("a secret was printed: %s", out)
	}
}

func TestCluster(t *testing.T) {
	t.Setenv("MJRELAY_POSTGRES_PASSWORD", "")
	t.Setenv("PGPASSWORD", "from-pgpassword")
	c, err := config.Parse([]byte("[cluster]\npostgres_url = \"postgres://mjrelay:URLSECRET@db.example/mjrelay\"\nnode_name = \"a1\""))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Clustered() || c.Cluster.NodeName != "a1" || c.Cluster.Lease.D().String() != "1m0s" || c.Cluster.Password.Reveal() != "from-pgpassword" {
		t.Fatalf("cluster: %+v", c.Cluster)
	}
	t.Setenv("MJRELAY_POSTGRES_PASSWORD", "ENVSECRET")
	c, err = config.Parse([]byte("[cluster]\npostgres_url = \"host=db user=mjrelay\""))
	if err != nil {
		t.Fatal(err)
	}
	if host, _ := os.Hostname(); c.Cluster.NodeName != host || c.Cluster.Password.Reveal() != "ENVSECRET" {
		t.Fatalf("defaults: node %q", c.Cluster.NodeName)
	}
	var buf bytes.Buffer
	c2, _ := config.Parse([]byte("[cluster]\npostgres_url = \"postgres://u:URLSECRET@db/x\""))
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("cfg", "cluster", c2.Cluster, "c", c2)
	j, _ := json.Marshal(c2)
	if out := buf.String() + string(j) + fmt.Sprintf("%v %+v %#v", c2, c2.Cluster, c2); strings.Contains(out, "URLSECRET") || strings.Contains(out, "ENVSECRET") {
		t.Fatalf("a cluster secret was printed: %s", out)
	}
	if e, _ := config.Parse(nil); e.Clustered() {
		t.Fatal("clustered without postgres_url")
	}
	for doc, want := range map[string]string{
		"[cluster]\npostgres_url = \"db.example\"":                             "cluster.postgres_url",
		"[cluster]\npostgres_url = \"postgres://x@db/y\"\nlease = \"10ms\"":    "cluster.lease",
		"[cluster]\npostgres_url = \"postgres://x@db/y\"\nnode_name = \"a b\"": "cluster.node_name",
		"[cluster]\nnode = \"x\"":                                              "unknown configuration key cluster.node",
	} {
		if _, err := config.Parse([]byte(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", doc, err, want)
		}
	}
}
