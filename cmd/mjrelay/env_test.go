package main

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/mjrelay/mjrelay/relay/config"
)

// TestConfigFromEnvironment applies the MJRELAY_* variables to a config
// file and checks the result, and that every mistake is refused with the
// variable's name and never its value.
func TestConfigFromEnvironment(t *testing.T) {
	const hash = "$2a$10$7ETCFHwgIWM5fKqwoIFDIODWxORvmj5zMdbcpDpambVf2JaXIsTSO" // of "some-hashed-password"
	const plain = "Env-Pa55word"
	file := `data_dir = "/data"
[smtp]
listen = "0.0.0.0:2525"
listen_tls = "0.0.0.0:2465"
trusted_networks = ["10.0.0.0/8"]
[[smtp.users]]
username = "odoo"
password_hash = "` + hash + `"
`
	tests := []struct {
		name    string
		file    string
		env     map[string]string
		check   func(t *testing.T, c *config.Config)
		wantErr string // substring; "" = no error
	}{
		{"no variables: the file as it is", file, nil, func(t *testing.T, c *config.Config) {
			if c.DataDir != "/data" || len(c.SMTP.Users) != 1 || c.SMTP.ListenTLS != "0.0.0.0:2465" {
				t.Errorf("%+v", c)
			}
		}, ""},
		{"addresses and data_dir", file, map[string]string{
			"MJRELAY_DATA_DIR": "/srv/mj", "MJRELAY_SMTP_LISTEN": "127.0.0.1:25", "MJRELAY_SMTP_LISTEN_TLS": "", "MJRELAY_HTTP_LISTEN": "",
		}, func(t *testing.T, c *config.Config) {
			if c.DataDir != "/srv/mj" || c.SMTP.Listen != "127.0.0.1:25" || c.SMTP.ListenTLS != "" || c.HTTP.Listen != "" {
				t.Errorf("data_dir %q, listen %q, listen_tls %q, http %q", c.DataDir, c.SMTP.Listen, c.SMTP.ListenTLS, c.HTTP.Listen)
			}
		}, ""},
		{"trusted networks replace the file's", file, map[string]string{"MJRELAY_TRUSTED_NETWORKS": "172.18.0.0/16, 192.0.2.7"},
			func(t *testing.T, c *config.Config) {
				if !slices.Equal(c.SMTP.TrustedNetworks, []string{"172.18.0.0/16", "192.0.2.7"}) {
					t.Errorf("trusted_networks %v", c.SMTP.TrustedNetworks)
				}
			}, ""},
		{"no trusted network", file, map[string]string{"MJRELAY_TRUSTED_NETWORKS": ""}, func(t *testing.T, c *config.Config) {
			if len(c.SMTP.TrustedNetworks) != 0 {
				t.Errorf("trusted_networks %v", c.SMTP.TrustedNetworks)
			}
		}, ""},
		{"SMTP login with a plain password joins the file's", file, map[string]string{"MJRELAY_SMTP_USER": "odoo2", "MJRELAY_SMTP_PASSWORD": plain},
			func(t *testing.T, c *config.Config) {
				if len(c.SMTP.Users) != 2 || c.SMTP.Users[1].Username != "odoo2" ||
					bcrypt.CompareHashAndPassword([]byte(c.SMTP.Users[1].PasswordHash.Reveal()), []byte(plain)) != nil {
					t.Errorf("users %+v", c.SMTP.Users)
				}
			}, ""},
		{"HTTP login with a hash, inline users table", `[http]
listen = "0.0.0.0:8025"
users = [{username = "a", password_hash = "` + hash + `"}]
`, map[string]string{"MJRELAY_HTTP_USER": "admin", "MJRELAY_HTTP_PASSWORD_HASH": hash}, func(t *testing.T, c *config.Config) {
			if len(c.HTTP.Users) != 2 || c.HTTP.Users[1].Username != "admin" || c.HTTP.Users[1].PasswordHash.Reveal() != hash {
				t.Errorf("http users %+v", c.HTTP.Users)
			}
		}, ""},
		{"validation still applies", file, map[string]string{"MJRELAY_HTTP_LISTEN": "0.0.0.0:8025"}, nil,
			"with MJRELAY_HTTP_LISTEN from the environment: http.users: required"},
		{"a login twice", file, map[string]string{"MJRELAY_SMTP_USER": "odoo", "MJRELAY_SMTP_PASSWORD": plain}, nil, `"odoo" appears twice`},
		{"a bad trusted network", file, map[string]string{"MJRELAY_TRUSTED_NETWORKS": "10.0.0.0/33"}, nil, "smtp.trusted_networks"},
		{"user without password", file, map[string]string{"MJRELAY_SMTP_USER": "odoo2"}, nil,
			"MJRELAY_SMTP_USER needs MJRELAY_SMTP_PASSWORD_HASH"},
		{"password without user", file, map[string]string{"MJRELAY_HTTP_PASSWORD": plain}, nil, "without MJRELAY_HTTP_USER"},
		{"password and hash", file, map[string]string{"MJRELAY_SMTP_USER": "x", "MJRELAY_SMTP_PASSWORD": plain, "MJRELAY_SMTP_PASSWORD_HASH": hash}, nil,
			"not both"},
		{"a password Odoo cannot send", file, map[string]string{"MJRELAY_SMTP_USER": "x", "MJRELAY_SMTP_PASSWORD": "Pässword"}, nil,
			"MJRELAY_SMTP_PASSWORD: Odoo (Python smtplib) can only send ASCII"},
		{"a password bcrypt cannot take", file, map[string]string{"MJRELAY_SMTP_USER": "x", "MJRELAY_SMTP_PASSWORD": strings.Repeat("p", 73)}, nil,
			"MJRELAY_SMTP_PASSWORD: bcrypt takes at most 72 bytes"},
		{"smtp not a table", "smtp = 1\n", map[string]string{"MJRELAY_SMTP_LISTEN": ":25"}, nil, "smtp is not a table"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("MJ_APIKEY_PUBLIC", "")
			t.Setenv("MJ_APIKEY_PRIVATE", "")
			path := filepath.Join(t.TempDir(), "mjrelay.toml")
			if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, used, err := loadConfigEnv(path, envMap(tc.env))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), plain) || strings.Contains(err.Error(), "Pässword") {
					t.Errorf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(used) != len(tc.env) {
				t.Errorf("variables reported as used: %v, set: %v", used, tc.env)
			}
			tc.check(t, cfg)
		})
	}
}

// TestConfigFromEnvironmentKeepsTheFile checks that applying a variable
// changes that key only: config.example.toml, with and without
// MJRELAY_DATA_DIR, gives the same configuration but for data_dir.
func TestConfigFromEnvironmentKeepsTheFile(t *testing.T) {
	t.Setenv("MJ_APIKEY_PUBLIC", "")
	t.Setenv("MJ_APIKEY_PRIVATE", "")
	example := filepath.Join(repoRoot, "config.example.toml")
	want, err := config.Load(example)
	if err != nil {
		t.Fatal(err)
	}
	want.DataDir = "/elsewhere"
	got, used, err := loadConfigEnv(example, envMap(map[string]string{"MJRELAY_DATA_DIR": "/elsewhere"}))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) || !slices.Equal(used, []string{"MJRELAY_DATA_DIR"}) {
		t.Errorf("with MJRELAY_DATA_DIR (used %v):\n%+v\nwant\n%+v", used, got, want)
	}
}
