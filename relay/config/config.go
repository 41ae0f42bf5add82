// Package config loads and validates mjrelay's TOML configuration.
//
// Unknown keys are an error that names the key, durations are Go duration
// strings ("90s", "1h"), and secrets are held in [Secret] so that they never
// reach a log line or a JSON document by accident.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is the whole configuration file.
type Config struct {
	DataDir  string  `toml:"data_dir"`
	Hostname string  `toml:"hostname"`
	SMTP     SMTP    `toml:"smtp"`
	Mailjet  Mailjet `toml:"mailjet"`
	Queue    Queue   `toml:"queue"`
	HTTP     HTTP    `toml:"http"`
	Policy   Policy  `toml:"policy"`
	Log      Log     `toml:"log"`
}

// SMTP configures the listeners that Odoo connects to.
type SMTP struct {
	Listen            string   `toml:"listen"`
	ListenTLS         string   `toml:"listen_tls"`
	TLSCert           string   `toml:"tls_cert"`
	TLSKey            string   `toml:"tls_key"`
	MaxMessageSize    int64    `toml:"max_message_size"`
	MaxRecipients     int      `toml:"max_recipients"`
	AllowInsecureAuth bool     `toml:"allow_insecure_auth"`
	TrustedNetworks   []string `toml:"trusted_networks"`
	MaxConnections    int      `toml:"max_connections"`
	ReadTimeout       Duration `toml:"read_timeout"`
	DataTimeout       Duration `toml:"data_timeout"`
	Users             []User   `toml:"users"`
}

// User is one SMTP login.
type User struct {
	Username     string   `toml:"username"`
	PasswordHash Secret   `toml:"password_hash"`
	AllowedFrom  []string `toml:"allowed_from"`
}

// Mailjet configures the upstream.
type Mailjet struct {
	APIKey    string `toml:"api_key"`
	SecretKey Secret `toml:"secret_key"`
	Transport string `toml:"transport"`
	SMTPHost  string `toml:"smtp_host"`
	SMTPPort  int    `toml:"smtp_port"`
	SMTPTLS   string `toml:"smtp_tls"`
	TLSCAFile string `toml:"tls_ca_file"`
	APIURL    string `toml:"api_url"`
	// Concurrency is the number of upstream deliveries in flight.
	Concurrency int `toml:"concurrency"`
	// Timeout bounds each upstream SMTP command.
	Timeout Duration `toml:"timeout"`
}

// Queue configures retries and the spool's size limits.
type Queue struct {
	RetryMin     Duration `toml:"retry_min"`
	RetryMax     Duration `toml:"retry_max"`
	MaxLifetime  Duration `toml:"max_lifetime"`
	MaxBytes     int64    `toml:"max_bytes"`
	MaxMessages  int      `toml:"max_messages"`
	MinFreeBytes int64    `toml:"min_free_bytes"`
}

// HTTP configures the health/admin listener.
type HTTP struct {
	Listen string `toml:"listen"`
}

// Policy configures the sender check against the Mailjet account.
type Policy struct {
	SenderCheck string   `toml:"sender_check"`
	RequireDKIM bool     `toml:"require_dkim"`
	RequireSPF  bool     `toml:"require_spf"`
	Refresh     Duration `toml:"refresh"`
}

// Log configures the process log and the traffic log.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `toml:"level"`
	// Traffic is where the JSON traffic log goes: a file path, "stdout",
	// "stderr" or "off". Default: data_dir/traffic.log.
	Traffic string `toml:"traffic"`
}

// Transport names.
const (
	TransportSMTP    = "smtp"
	TransportSandbox = "sandbox"
)

// Default returns the configuration used for keys the file leaves out.
func Default() *Config {
	return &Config{
		DataDir:  "./data",
		Hostname: "mjrelay.local",
		SMTP: SMTP{
			Listen:         "127.0.0.1:2525",
			MaxMessageSize: 26214400,
			MaxRecipients:  100,
			MaxConnections: 500,
			ReadTimeout:    Duration(5 * time.Minute),
			DataTimeout:    Duration(10 * time.Minute),
		},
		Mailjet: Mailjet{
			SMTPHost:    "in-v3.mailjet.com",
			SMTPPort:    587,
			SMTPTLS:     "starttls",
			APIURL:      "https://api.mailjet.com",
			Concurrency: 8,
			Timeout:     Duration(time.Minute),
		},
		Queue: Queue{
			RetryMin:     Duration(time.Minute),
			RetryMax:     Duration(time.Hour),
			MaxLifetime:  Duration(120 * time.Hour),
			MaxBytes:     4 << 30,
			MaxMessages:  1000000,
			MinFreeBytes: 256 << 20,
		},
		HTTP:   HTTP{Listen: "127.0.0.1:8025"},
		Policy: Policy{SenderCheck: "enforce", Refresh: Duration(5 * time.Minute)},
		Log:    Log{Level: "info"},
	}
}

// Load reads path, applies defaults and the MJ_APIKEY_* environment
// variables, and validates the result.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse decodes a configuration document; see [Load].
func Parse(data []byte) (*Config, error) {
	c := Default()
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(c)
	if err != nil {
		return nil, err
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return nil, fmt.Errorf("unknown configuration key %s", strings.Join(keys, ", "))
	}
	if c.Mailjet.APIKey == "" {
		c.Mailjet.APIKey = os.Getenv("MJ_APIKEY_PUBLIC")
	}
	if c.Mailjet.SecretKey == "" {
		c.Mailjet.SecretKey = Secret(os.Getenv("MJ_APIKEY_PRIVATE"))
	}
	if c.Mailjet.Transport == "" {
		c.Mailjet.Transport = TransportSMTP
		if !c.HasKeys() {
			c.Mailjet.Transport = TransportSandbox
		}
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// HasKeys reports whether both Mailjet keys are set.
func (c *Config) HasKeys() bool { return c.Mailjet.APIKey != "" && c.Mailjet.SecretKey != "" }

// Sandbox reports whether the relay records mail without sending it.
func (c *Config) Sandbox() bool { return c.Mailjet.Transport == TransportSandbox }

// QueueDir is where the spool lives.
func (c *Config) QueueDir() string { return filepath.Join(c.DataDir, "queue") }

// ControlSocket is the unix socket `mjrelay queue` uses to reach a running server.
func (c *Config) ControlSocket() string { return filepath.Join(c.DataDir, "control.sock") }

// TrustedPrefixes parses smtp.trusted_networks (validated by Load).
func (c *Config) TrustedPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range c.SMTP.TrustedNetworks {
		if p, err := parsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (c *Config) validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	if c.Hostname == "" || strings.ContainsAny(c.Hostname, " \t\r\n") {
		bad("hostname", "must be a host name")
	}
	for key, addr := range map[string]string{"smtp.listen": c.SMTP.Listen, "smtp.listen_tls": c.SMTP.ListenTLS, "http.listen": c.HTTP.Listen} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad(key, "%q is not host:port", addr)
		}
	}
	if c.SMTP.Listen == "" && c.SMTP.ListenTLS == "" {
		bad("smtp.listen", "at least one of smtp.listen and smtp.listen_tls must be set")
	}
	if (c.SMTP.TLSCert == "") != (c.SMTP.TLSKey == "") {
		bad("smtp.tls_cert", "tls_cert and tls_key go together")
	}
	if c.SMTP.MaxMessageSize <= 0 {
		bad("smtp.max_message_size", "must be positive")
	}
	if c.SMTP.MaxRecipients <= 0 {
		bad("smtp.max_recipients", "must be positive")
	}
	for _, n := range c.SMTP.TrustedNetworks {
		if _, err := parsePrefix(n); err != nil {
			bad("smtp.trusted_networks", "%q is not an address or CIDR prefix", n)
		}
	}
	seen := map[string]bool{}
	for i, u := range c.SMTP.Users {
		key := fmt.Sprintf("smtp.users[%d]", i)
		switch {
		case u.Username == "":
			bad(key+".username", "must not be empty")
		case seen[u.Username]:
			bad(key+".username", "%q appears twice", u.Username)
		case !strings.HasPrefix(string(u.PasswordHash), "$2"):
			bad(key+".password_hash", "must be a bcrypt hash from `mjrelay hash-password`")
		}
		seen[u.Username] = true
	}
	switch c.Mailjet.Transport {
	case TransportSandbox:
	case TransportSMTP:
		if !c.HasKeys() {
			bad("mailjet.transport", "%q needs mailjet.api_key and mailjet.secret_key (or MJ_APIKEY_PUBLIC/MJ_APIKEY_PRIVATE)", c.Mailjet.Transport)
		}
	default:
		bad("mailjet.transport", "%q is not one of smtp, sandbox", c.Mailjet.Transport)
	}
	if c.Mailjet.SMTPTLS != "starttls" && c.Mailjet.SMTPTLS != "tls" {
		bad("mailjet.smtp_tls", "%q is not starttls or tls", c.Mailjet.SMTPTLS)
	}
	if c.Mailjet.SMTPPort <= 0 || c.Mailjet.SMTPPort > 65535 {
		bad("mailjet.smtp_port", "%d is not a port", c.Mailjet.SMTPPort)
	}
	if c.Mailjet.Concurrency <= 0 {
		bad("mailjet.concurrency", "must be positive")
	}
	if c.Queue.RetryMin <= 0 || c.Queue.RetryMax < c.Queue.RetryMin {
		bad("queue.retry_min", "need 0 < retry_min <= retry_max")
	}
	if c.Queue.MaxLifetime <= 0 {
		bad("queue.max_lifetime", "must be positive")
	}
	switch c.Policy.SenderCheck {
	case "enforce", "warn", "off":
	default:
		bad("policy.sender_check", "%q is not enforce, warn or off", c.Policy.SenderCheck)
	}
	if c.Policy.Refresh <= 0 {
		bad("policy.refresh", "must be positive")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	return errors.Join(errs...)
}

// Duration is a time.Duration written as a Go duration string.
type Duration time.Duration

// UnmarshalText parses "90s", "5m", "120h".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Secret is a string that never prints: logs, fmt and JSON show "[redacted]".
type Secret string

const redacted = "[redacted]"

func (Secret) String() string                  { return redacted }
func (Secret) GoString() string                { return redacted }
func (Secret) LogValue() slog.Value            { return slog.StringValue(redacted) }
func (Secret) MarshalJSON() ([]byte, error)    { return []byte(`"` + redacted + `"`), nil }
func (s *Secret) UnmarshalText(b []byte) error { *s = Secret(b); return nil }

// Reveal returns the secret itself, for the one place that needs it.
func (s Secret) Reveal() string { return string(s) }
