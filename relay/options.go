package relay

import (
	"log/slog"
	"path/filepath"

	"github.com/mjrelay/mjrelay/mailjet/account"
	"github.com/mjrelay/mjrelay/policy"
	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/intake"
	"github.com/mjrelay/mjrelay/relay/lanes"
	"github.com/mjrelay/mjrelay/relay/smtpd"
	"github.com/mjrelay/mjrelay/relay/web"
)

// The components take options of plain values; these build them from the
// configuration, which only the assembly (and cmd/) reads. Secrets leave
// their config.Secret here, for the component that uses them.

func policyOptions(cfg *config.Config) policy.Options {
	o := policy.Options{SenderCheck: cfg.Policy.SenderCheck, RequireDKIM: cfg.Policy.RequireDKIM,
		RequireSPF: cfg.Policy.RequireSPF, HasKeys: cfg.HasKeys()}
	for _, u := range cfg.SMTP.Users {
		o.Logins = append(o.Logins, policy.Login{Username: u.Username, AllowedFrom: u.AllowedFrom})
	}
	return o
}

func accountOptions(cfg *config.Config, log *slog.Logger) account.Options {
	return account.Options{APIURL: cfg.Mailjet.APIURL, APIKey: cfg.Mailjet.APIKey, SecretKey: cfg.Mailjet.SecretKey.Reveal(),
		DataDir: cfg.DataDir, Refresh: cfg.Policy.Refresh.D(), Logger: log}
}

func classifierOptions(cfg *config.Config, acct lanes.Account) lanes.ClassifierOptions {
	o := lanes.ClassifierOptions{LoginClass: map[string]lanes.Class{}, Account: acct}
	for _, u := range cfg.SMTP.Users {
		o.LoginClass[u.Username] = lanes.Class(u.Class)
	}
	return o
}

func intakeOptions(cfg *config.Config, wantBodies bool) intake.Options {
	return intake.Options{Hostname: cfg.Hostname, CampaignFromMailing: cfg.Mailjet.CampaignFromMailing, WantBodies: wantBodies}
}

func smtpOptions(cfg *config.Config) smtpd.Options {
	s := cfg.SMTP
	o := smtpd.Options{
		Hostname: cfg.Hostname, Listen: s.Listen, ListenTLS: s.ListenTLS,
		TLSCert: s.TLSCert, TLSKey: s.TLSKey, TLSDir: filepath.Join(cfg.DataDir, "tls"),
		MaxMessageSize: s.MaxMessageSize, MaxRecipients: s.MaxRecipients, AllowInsecureAuth: s.AllowInsecureAuth,
		Trusted: cfg.TrustedPrefixes(), ProxyFrom: cfg.ProxyPrefixes(), MaxConnections: s.MaxConnections,
		ReadTimeout: s.ReadTimeout.D(), DataTimeout: s.DataTimeout.D(),
	}
	for _, u := range s.Users {
		o.Users = append(o.Users, smtpd.User{Username: u.Username, PasswordHash: u.PasswordHash.Reveal()})
	}
	return o
}

func webOptions(cfg *config.Config) web.Options {
	o := web.Options{Sandbox: cfg.Sandbox(), SenderCheck: cfg.Policy.SenderCheck,
		RequireDKIM: cfg.Policy.RequireDKIM, RequireSPF: cfg.Policy.RequireSPF}
	for _, u := range cfg.HTTP.Users {
		o.Users = append(o.Users, web.User{Username: u.Username, PasswordHash: u.PasswordHash.Reveal()})
	}
	if wh := cfg.Webhooks; wh.MailjetUser != "" {
		o.Webhook = web.User{Username: wh.MailjetUser, PasswordHash: wh.MailjetPasswordHash.Reveal()}
	}
	return o
}
