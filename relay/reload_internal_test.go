package relay

import (
	"slices"
	"testing"

	"github.com/mjrelay/mjrelay/relay/config"
)

// TestChangedKeys: a reload sees which keys changed, by their TOML names
// (an array of tables is one key), secrets included but never their
// values; a key put back to its value is no longer a change.
func TestChangedKeys(t *testing.T) {
	a, b := config.Default(), config.Default()
	b.DataDir = "/elsewhere"
	b.SMTP.Users = []config.User{{Username: "odoo2"}}
	b.Mailjet.SecretKey = "new-secret"
	b.Routes.Bulk.Concurrency = 5
	b.Queue.RetryMin = config.Duration(1)
	want := []string{"data_dir", "smtp.users", "mailjet.secret_key", "queue.retry_min", "routes.bulk.concurrency"}
	if got := changedKeys(a, b); !slices.Equal(got, want) {
		t.Errorf("changedKeys = %v, want %v", got, want)
	}
	copyKey(b, a, "data_dir")
	copyKey(b, a, "mailjet.secret_key")
	if b.DataDir != a.DataDir || b.Mailjet.SecretKey != a.Mailjet.SecretKey || b.Routes.Bulk.Concurrency != 5 {
		t.Errorf("copyKey: data_dir %q, secret changed %v, bulk concurrency %d", b.DataDir, b.Mailjet.SecretKey != a.Mailjet.SecretKey, b.Routes.Bulk.Concurrency)
	}
	if got, want := changedKeys(a, b), []string{"smtp.users", "queue.retry_min", "routes.bulk.concurrency"}; !slices.Equal(got, want) {
		t.Errorf("after copyKey: %v", got)
	}
}

// TestHotKeys: which keys a reload applies, and which need a restart.
func TestHotKeys(t *testing.T) {
	hot := []string{"smtp.users", "smtp.trusted_networks", "smtp.tls_cert", "smtp.max_recipients",
		"routes.bulk.rate", "routes.transactional.transports", "mailjet.smtp_port", "policy.require_dkim",
		"http.users", "webhooks.mailjet_user", "log.level", "queue.retry_max"}
	restart := []string{"data_dir", "hostname", "smtp.listen", "smtp.listen_tls", "http.listen",
		"smtp.max_message_size", "smtp.max_connections", "smtp.read_timeout", "mailjet.api_key",
		"mailjet.secret_key", "mailjet.api_url", "policy.refresh", "queue.max_messages", "store.retention",
		"log.traffic", "smtp.users_x"}
	for _, key := range hot {
		if !under(key, hotKeys) {
			t.Errorf("%s is not applied by a reload", key)
		}
	}
	for _, key := range restart {
		if under(key, hotKeys) {
			t.Errorf("%s is applied by a reload, but needs a restart", key)
		}
	}
	for key, rebuilt := range map[string]bool{
		"mailjet.smtp_port": true, "mailjet.transport": true, "routes.bulk.transports": true, "routes.bulk.api_key": true,
		"routes.bulk.rate": false, "routes.transactional.concurrency": false, "smtp.users": false,
	} {
		if got := under(key, transportKeys); got != rebuilt {
			t.Errorf("%s: rebuilds the transports = %v, want %v", key, got, rebuilt)
		}
	}
}
