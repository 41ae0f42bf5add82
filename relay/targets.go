package relay

import (
	"time"

	"crypto/x509"
	"fmt"
	"log/slog"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/mailjet/smtpout"
	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/lanes"
)

// buildLanes builds the transactional and bulk lanes (in that order: the first
// is served first) with their transports. Transports with the same keys are
// shared between the lanes; a lane with its own Mailjet sub-account keys
// gets its own.
func buildLanes(cfg *config.Config, roots *x509.CertPool, override mailjet.Target, log *slog.Logger) ([]lanes.Lane, []mailjet.Target, error) {
	built := map[string]mailjet.Target{}
	var all []mailjet.Target
	get := func(name, key string, secret config.Secret, conc int) (mailjet.Target, error) {
		if override != nil {
			return override, nil
		}
		id := name + "\x00" + key
		if t, ok := built[id]; ok {
			return t, nil
		}
		var t mailjet.Target
		var err error
		switch name {
		case config.TransportSandbox:
			t = mailjet.Sandbox{}
		case config.TransportSMTP:
			t, err = smtpout.New(smtpout.Config{
				Host: cfg.Mailjet.SMTPHost, Port: cfg.Mailjet.SMTPPort, TLS: cfg.Mailjet.SMTPTLS,
				Username: key, Password: secret.Reveal(), CAFile: cfg.Mailjet.TLSCAFile, RootCAs: roots,
				Helo: cfg.Hostname, Timeout: cfg.Mailjet.Timeout.D(), MaxIdle: conc, Logger: log,
			})
		case config.TransportAPI:
			t, err = newAPITarget(cfg, key, secret, roots, log)
		default:
			err = fmt.Errorf("unknown transport %q", name)
		}
		if err != nil {
			return nil, err
		}
		built[id] = t
		all = append(all, t)
		return t, nil
	}
	var out []lanes.Lane
	for _, r := range []struct {
		class lanes.Class
		route config.Route
	}{{lanes.Transactional, cfg.Routes.Transactional}, {lanes.Bulk, cfg.Routes.Bulk}} {
		key, secret := cfg.Mailjet.APIKey, cfg.Mailjet.SecretKey
		if r.route.APIKey != "" {
			key, secret = r.route.APIKey, r.route.SecretKey
		}
		l := lanes.Lane{Class: r.class, Concurrency: r.route.Concurrency, Rate: r.route.Rate, Priority: r.route.Priority,
			FlowBacklog: r.route.FlowBacklog, FlowDelay: time.Duration(r.route.FlowDelay)}
		for _, name := range r.route.Transports {
			t, err := get(name, key, secret, cfg.Routes.Transactional.Concurrency+cfg.Routes.Bulk.Concurrency)
			if err != nil {
				for _, x := range all {
					x.Close()
				}
				return nil, nil, fmt.Errorf("routes.%s: %w", r.class, err)
			}
			l.Targets = append(l.Targets, t)
		}
		out = append(out, l)
	}
	if override != nil {
		all = []mailjet.Target{override}
	}
	return out, all, nil
}
