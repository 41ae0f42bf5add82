package config_test

import (
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/mjrelay/mjrelay/relay/config"
)

// TestPasswordHashes: a hash every login would fail against is refused at
// load, naming the key, without quoting the hash.
func TestPasswordHashes(t *testing.T) {
	t.Setenv("MJ_APIKEY_PUBLIC", "")
	t.Setenv("MJ_APIKEY_PRIVATE", "")
	b, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	good := string(b)
	hashes := []struct {
		name, hash, why string // why: "" for a good hash
	}{
		{"good", good, ""},
		{"README placeholder", "$2a$10$...", "has 10 characters"},
		{"truncated", good[:59], "has 59 characters"},
		{"one too many", good + "x", "has 61 characters"},
		{"md5-crypt", "$1$" + good[3:], "does not start with $2a$"},
		{"unknown minor", "$2x$" + good[4:], "does not start with $2a$"},
		{"cost 99", good[:4] + "99" + good[6:], "no valid cost"},
		{"cost letters", good[:4] + "ab" + good[6:], "no valid cost"},
		{"no $ after cost", good[:6] + "x" + good[7:], "no valid cost"},
		{"outside the alphabet", good[:40] + "+" + good[41:], "position 41"},
		{"space", good[:59] + " ", "position 60"},
	}
	keys := []struct {
		key string
		doc func(hash string) string
	}{
		{"smtp.users[1].password_hash", func(h string) string {
			return fmt.Sprintf("[[smtp.users]]\nusername = \"a\"\npassword_hash = %q\n[[smtp.users]]\nusername = \"odoo\"\npassword_hash = %q", good, h)
		}},
		{"http.users[0].password_hash", func(h string) string {
			return fmt.Sprintf("[[http.users]]\nusername = \"admin\"\npassword_hash = %q", h)
		}},
		{"webhooks.mailjet_password_hash", func(h string) string {
			return fmt.Sprintf("[webhooks]\nmailjet_user = \"mailjet\"\nmailjet_password_hash = %q", h)
		}},
	}
	for _, k := range keys {
		for _, h := range hashes {
			t.Run(k.key+"/"+h.name, func(t *testing.T) {
				_, err := config.Parse([]byte(k.doc(h.hash)))
				if h.why == "" {
					if err != nil {
						t.Fatalf("a good hash refused: %v", err)
					}
					return
				}
				if err == nil {
					t.Fatalf("accepted; every login would fail")
				}
				msg := err.Error()
				if !strings.Contains(msg, k.key+": ") || !strings.Contains(msg, h.why) || !strings.Contains(msg, "mjrelay hash-password") {
					t.Errorf("error %q, want it to name %s and say %q", msg, k.key, h.why)
				}
				if len(h.hash) > 12 && strings.Contains(msg, h.hash[7:19]) {
					t.Errorf("the error quotes the hash: %q", msg)
				}
			})
		}
	}
}
