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
	for key, hot := range map[string]bool{
		"smtp.users": true, "smtp.trusted_networks": true, "smtp.tls_cert": true, "smtp.max_recipients": true,
		"routes.bulk.rate": true, "routes.transactional.transports": true, "mailjet.smtp_port": true,
		"policy.require_dkim": true, "http.users": true, "webhooks.mailjet_user": true, "log.level": true,
		"queue.retry_max": true,
		"data_dir": false, "hostname": false, "smtp.listen": false, "smtp.listen_tls": false, "http.listen": false,
		"smtp.max_message_size": false, "smtp.max_connections": false, "smtp.read_timeout": false,
		"mailjet.api_key": false, "mailjet.secret_key": false, "mailjet.api_url": false, "policy.refresh": false,
		"queue.max_messages": false, "store.retention": false, "log.traffic": false, "smtp.users_x": false,
	} {
		if got := under(key, hotKeys); got != hot {
			t.Errorf("%s: applied by a reload = %v, want %v", key, got, hot)
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
