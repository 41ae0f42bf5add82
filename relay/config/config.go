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
	DataDir  string   `toml:"data_dir"`
	Hostname string   `toml:"hostname"`
	SMTP     SMTP     `toml:"smtp"`
	Mailjet  Mailjet  `toml:"mailjet"`
	Queue    Queue    `toml:"queue"`
	HTTP     HTTP     `toml:"http"`
	Policy   Policy   `toml:"policy"`
	Routes   Routes   `toml:"routes"`
	Store    Store    `toml:"store"`
	Webhooks Webhooks `toml:"webhooks"`
	Log      Log      `toml:"log"`
	Odoo     Odoo     `toml:"odoo"`
	Cluster  Cluster  `toml:"cluster"`
}

// Cluster configures cluster mode: several nodes on one PostgreSQL
// database. With PostgresURL empty the relay runs embedded (segment spool
// and SQLite in data_dir).
type Cluster struct {
	// PostgresURL is a PostgreSQL connection URL or key=value string. It
	// may hold a password, so it never prints either.
	PostgresURL Secret `toml:"postgres_url"`
	// Password is used when the URL has none: from the environment
	// (MJRELAY_POSTGRES_PASSWORD, else PGPASSWORD); never from the file.
	Password Secret `toml:"-"`
	// NodeName names this node in the UI and the records (default: the
	// host name).
	NodeName string `toml:"node_name"`
	// Lease is how long a node's claim on a message lasts without being
	// renewed: after a node dies, the others take its messages over
	// within it.
	Lease Duration `toml:"lease"`
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
	// ProxyProtocolFrom are the load balancers (addresses or CIDR
	// prefixes) whose connections start with a PROXY protocol header (v1
	// or v2) naming the real client; no one else may send one.
	ProxyProtocolFrom []string `toml:"proxy_protocol_from"`
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
	// Class, if set ("transactional" or "bulk"), classifies all this
	// login's mail.
	Class string `toml:"class"`
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
	// Timeout bounds each upstream SMTP command and each API call.
	Timeout Duration `toml:"timeout"`
	// CampaignFromMailing sets X-Mailjet-Campaign / CustomCampaign from the
	// Odoo mailing id found in List-Unsubscribe.
	CampaignFromMailing bool `toml:"campaign_from_mailing"`
}

// Routes are the two delivery lanes.
type Routes struct {
	Transactional Route `toml:"transactional"`
	Bulk          Route `toml:"bulk"`
}

// Route is one lane's delivery settings.
type Route struct {
	// Transports are tried in order on temporary failure: "smtp", "api"
	// (or "sandbox"). Default: [mailjet.transport].
	Transports []string `toml:"transports"`
	// Priority is X-Mailjet-Prio (SMTP) / Priority (API), 0-3.
	Priority int `toml:"priority"`
	// Concurrency is the upstream deliveries in flight for this lane.
	Concurrency int `toml:"concurrency"`
	// Rate caps messages per second (0 = no cap).
	Rate float64 `toml:"rate"`
	// FlowBacklog: while the lane has more ready messages than this, the
	// 250 for each new message of its class waits (up to FlowDelay) for
	// one of the lane's deliveries, like Postfix's in_flow_delay, so that
	// a mass mailing is taken in at the pace it leaves and leaves the CPU
	// to transactional mail. 0 = never.
	FlowBacklog int      `toml:"flow_backlog"`
	FlowDelay   Duration `toml:"flow_delay"`
	// APIKey/SecretKey: an optional Mailjet sub-account for this lane.
	APIKey    string `toml:"api_key"`
	SecretKey Secret `toml:"secret_key"`
}

// Store configures the traffic inspection store.
type Store struct {
	// Retention is how long message records are kept.
	Retention Duration `toml:"retention"`
	// KeepBodies is how long raw messages are kept for download after
	// delivery (0 = dropped at once).
	KeepBodies Duration `toml:"keep_bodies"`
}

// Webhooks configures Mailjet's event callback.
type Webhooks struct {
	MailjetUser         string `toml:"mailjet_user"`
	MailjetPasswordHash Secret `toml:"mailjet_password_hash"`
}

// HTTPUser is a login for the web UI and API.
type HTTPUser struct {
	Username     string `toml:"username"`
	PasswordHash Secret `toml:"password_hash"`
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

// HTTP configures the web UI, API, metrics and health listener.
type HTTP struct {
	Listen string     `toml:"listen"`
	Users  []HTTPUser `toml:"users"`
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
	TransportAPI     = "api"
	TransportSandbox = "sandbox"
)

// Classes.
const (
	ClassTransactional = "transactional"
	ClassBulk          = "bulk"
)

// Default returns the configuration used for keys the file leaves out.
func Default() *Config {
	return &Config{
		DataDir:  "./data",
		Hostname: "mjrelay.local",
		SMTP: SMTP{
			Listen:         "127.0.0.1:2525",
			MaxMessageSize: 26214400,
			MaxRecipients:  1000,
			MaxConnections: 500,
			ReadTimeout:    Duration(5 * time.Minute),
			DataTimeout:    Duration(10 * time.Minute),
		},
		Mailjet: Mailjet{
			SMTPHost:            "in-v3.mailjet.com",
			SMTPPort:            587,
			SMTPTLS:             "starttls",
			APIURL:              "https://api.mailjet.com",
			Timeout:             Duration(time.Minute),
			CampaignFromMailing: true,
		},
		Routes: Routes{
			Transactional: Route{Priority: 2, Concurrency: 8, FlowDelay: Duration(time.Second)},
			Bulk:          Route{Priority: 1, Concurrency: 2, FlowBacklog: 1000, FlowDelay: Duration(time.Second)},
		},
		Store: Store{Retention: Duration(720 * time.Hour), KeepBodies: Duration(168 * time.Hour)},
		Queue: Queue{
			RetryMin:     Duration(time.Minute),
			RetryMax:     Duration(time.Hour),
			MaxLifetime:  Duration(120 * time.Hour),
			MaxBytes:     4 << 30,
			MaxMessages:  1000000,
			MinFreeBytes: 256 << 20,
		},
		HTTP:    HTTP{Listen: "127.0.0.1:8025"},
		Policy:  Policy{SenderCheck: "enforce", Refresh: Duration(5 * time.Minute)},
		Log:     Log{Level: "info"},
		Cluster: Cluster{Lease: Duration(time.Minute)},
		Odoo:    defaultOdoo(),
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
	if c.Cluster.PostgresURL != "" {
		if c.Cluster.Password = Secret(os.Getenv("MJRELAY_POSTGRES_PASSWORD")); c.Cluster.Password == "" {
			c.Cluster.Password = Secret(os.Getenv("PGPASSWORD"))
		}
		if c.Cluster.NodeName == "" {
			c.Cluster.NodeName, _ = os.Hostname()
		}
	}
	c.Odoo.applyEnv()
	if c.Mailjet.Transport == "" {
		c.Mailjet.Transport = TransportSMTP
		if !c.HasKeys() {
			c.Mailjet.Transport = TransportSandbox
		}
	}
	for _, r := range []*Route{&c.Routes.Transactional, &c.Routes.Bulk} {
		// Sandbox mode sends nothing, whatever the routes say.
		if len(r.Transports) == 0 || c.Mailjet.Transport == TransportSandbox {
			r.Transports = []string{c.Mailjet.Transport}
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

// Clustered reports whether the relay runs as a node of a cluster on
// PostgreSQL (cluster.postgres_url set).
func (c *Config) Clustered() bool { return c.Cluster.PostgresURL != "" }

// QueueDir is where the spool lives (in cluster mode: the local spool that
// holds mail while PostgreSQL is unreachable).
func (c *Config) QueueDir() string { return filepath.Join(c.DataDir, "queue") }

// ControlSocket is the unix socket `mjrelay queue` uses to reach a running server.
func (c *Config) ControlSocket() string { return filepath.Join(c.DataDir, "control.sock") }

// TrafficFile is the traffic log's file, or "" when log.traffic is "off",
// "stdout" or "stderr".
func (c *Config) TrafficFile() string {
	switch c.Log.Traffic {
	case "off", "stdout", "stderr":
		return ""
	case "":
		return filepath.Join(c.DataDir, "traffic.log")
	}
	return c.Log.Traffic
}

// TrustedPrefixes parses smtp.trusted_networks (validated by Load).
func (c *Config) TrustedPrefixes() []netip.Prefix { return prefixes(c.SMTP.TrustedNetworks) }

// ProxyPrefixes parses smtp.proxy_protocol_from (validated by Load).
func (c *Config) ProxyPrefixes() []netip.Prefix { return prefixes(c.SMTP.ProxyProtocolFrom) }

func prefixes(list []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range list {
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
	for key, list := range map[string][]string{"smtp.trusted_networks": c.SMTP.TrustedNetworks, "smtp.proxy_protocol_from": c.SMTP.ProxyProtocolFrom} {
		for _, n := range list {
			if _, err := parsePrefix(n); err != nil {
				bad(key, "%q is not an address or CIDR prefix", n)
			}
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
		case checkHash(u.PasswordHash) != "":
			bad(key+".password_hash", "%s", checkHash(u.PasswordHash))
		}
		seen[u.Username] = true
	}
	switch c.Mailjet.Transport {
	case TransportSandbox, TransportSMTP, TransportAPI:
	default:
		bad("mailjet.transport", "%q is not one of smtp, api, sandbox", c.Mailjet.Transport)
	}
	for name, r := range map[string]Route{"routes.transactional": c.Routes.Transactional, "routes.bulk": c.Routes.Bulk} {
		keys := c.HasKeys() || (r.APIKey != "" && r.SecretKey != "")
		for _, t := range r.Transports {
			switch t {
			case TransportSandbox:
			case TransportSMTP, TransportAPI:
				if !keys {
					bad(name+".transports", "%q needs mailjet.api_key and mailjet.secret_key (or MJ_APIKEY_PUBLIC/MJ_APIKEY_PRIVATE)", t)
				}
			default:
				bad(name+".transports", "%q is not one of smtp, api, sandbox", t)
			}
		}
		if (r.APIKey == "") != (r.SecretKey == "") {
			bad(name+".api_key", "api_key and secret_key go together")
		}
		if r.Priority < 0 || r.Priority > 3 {
			bad(name+".priority", "%d is not 0-3", r.Priority)
		}
		if r.Concurrency <= 0 {
			bad(name+".concurrency", "must be positive")
		}
		if r.Rate < 0 {
			bad(name+".rate", "must not be negative")
		}
		if r.FlowBacklog < 0 {
			bad(name+".flow_backlog", "must not be negative")
		}
		if r.FlowDelay < 0 || r.FlowDelay > Duration(30*time.Second) {
			bad(name+".flow_delay", "%s is not between 0s and 30s (clients time out)", time.Duration(r.FlowDelay))
		}
	}
	for i, u := range c.SMTP.Users {
		if u.Class != "" && u.Class != ClassTransactional && u.Class != ClassBulk {
			bad(fmt.Sprintf("smtp.users[%d].class", i), "%q is not transactional or bulk", u.Class)
		}
	}
	if c.HTTP.Listen != "" && !loopbackListen(c.HTTP.Listen) && len(c.HTTP.Users) == 0 {
		bad("http.users", "required when http.listen (%s) is not a loopback address", c.HTTP.Listen)
	}
	for i, u := range c.HTTP.Users {
		key := fmt.Sprintf("http.users[%d]", i)
		if u.Username == "" {
			bad(key+".username", "must not be empty")
		}
		if why := checkHash(u.PasswordHash); why != "" {
			bad(key+".password_hash", "%s", why)
		}
	}
	if (c.Webhooks.MailjetUser == "") != (c.Webhooks.MailjetPasswordHash == "") {
		bad("webhooks.mailjet_user", "mailjet_user and mailjet_password_hash go together")
	} else if why := checkHash(c.Webhooks.MailjetPasswordHash); c.Webhooks.MailjetPasswordHash != "" && why != "" {
		bad("webhooks.mailjet_password_hash", "%s", why)
	}
	if c.Store.Retention <= 0 {
		bad("store.retention", "must be positive")
	}
	if c.Store.KeepBodies < 0 {
		bad("store.keep_bodies", "must not be negative")
	}
	if c.Mailjet.SMTPTLS != "starttls" && c.Mailjet.SMTPTLS != "tls" {
		bad("mailjet.smtp_tls", "%q is not starttls or tls", c.Mailjet.SMTPTLS)
	}
	if c.Mailjet.SMTPPort <= 0 || c.Mailjet.SMTPPort > 65535 {
		bad("mailjet.smtp_port", "%d is not a port", c.Mailjet.SMTPPort)
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
	c.validateCluster(bad)
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	c.Odoo.validate(bad)
	return errors.Join(errs...)
}

// loopbackListen reports whether addr (host:port) binds only loopback.
func loopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
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
