package config

import (
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
)

// Odoo configures the feedback into Odoo: Mailjet's bounces, blocks,
// complaints and unsubscriptions, and the relay's own permanent failures,
// reported as Odoo processes them natively.
type Odoo struct {
	// URL is Odoo's base URL; "" turns the feedback off.
	URL   string `toml:"url"`
	DB    string `toml:"db"`
	Login string `toml:"login"`
	// APIKey is Login's API key (or ODOO_API_KEY).
	APIKey Secret `toml:"api_key"`
	// BounceAddress is Odoo's bounce alias (the DSN's To); default: the
	// original message's envelope sender.
	BounceAddress string `toml:"bounce_address"`
	// Report lists what is reported: bounce, blocked, failed, spam, unsub.
	Report []string `toml:"report"`
	// UnsubBlacklist blacklists an unsubscribed address whose message
	// carried no Odoo one-click unsubscribe URL.
	UnsubBlacklist bool `toml:"unsub_blacklist"`
	// Timeout bounds each call to Odoo.
	Timeout Duration `toml:"timeout"`
}

// OdooReports are the values odoo.report takes.
var OdooReports = []string{"bounce", "blocked", "failed", "spam", "unsub"}

func defaultOdoo() Odoo {
	return Odoo{Report: slices.Clone(OdooReports), Timeout: Duration(time.Minute)}
}

// Enabled reports whether feedback into Odoo is configured.
func (o *Odoo) Enabled() bool { return o.URL != "" }

// Reports reports whether odoo.report names what.
func (o *Odoo) Reports(what string) bool { return slices.Contains(o.Report, what) }

func (o *Odoo) applyEnv() {
	if o.APIKey == "" {
		o.APIKey = Secret(os.Getenv("ODOO_API_KEY"))
	}
}

func (o *Odoo) validate(bad func(key, format string, args ...any)) {
	for _, r := range o.Report {
		if !slices.Contains(OdooReports, r) {
			bad("odoo.report", "%q is not one of %s", r, strings.Join(OdooReports, ", "))
		}
	}
	if o.Timeout <= 0 {
		bad("odoo.timeout", "must be positive")
	}
	if o.BounceAddress != "" && (!strings.Contains(o.BounceAddress, "@") || strings.ContainsAny(o.BounceAddress, " <>\r\n")) {
		bad("odoo.bounce_address", "%q is not an address (Odoo's bounce alias, e.g. bounce@example.com)", o.BounceAddress)
	}
	if o.URL == "" {
		if o.DB != "" || o.Login != "" {
			bad("odoo.url", "must be set when odoo.db or odoo.login is (or remove them to turn the feedback off)")
		}
		return
	}
	if u, err := url.Parse(o.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		bad("odoo.url", "%q is not Odoo's base URL (https://erp.example.com, without a login in it)", o.URL)
	}
	if o.DB == "" {
		bad("odoo.db", "must be set (the Odoo database name)")
	}
	if o.Login == "" {
		bad("odoo.login", "must be set (an Odoo user allowed to process mail and write mail.blacklist)")
	}
	if o.APIKey == "" {
		bad("odoo.api_key", "must be set (or ODOO_API_KEY): the login's API key, from Odoo's Preferences → Account Security")
	}
}
