package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/control"
	"github.com/mjrelay/mjrelay/relay/deliver"
	"github.com/mjrelay/mjrelay/relay/lanes"
	"github.com/mjrelay/mjrelay/relay/notify"
	"github.com/mjrelay/mjrelay/relay/web"
)

// hotKeys are the configuration keys (and tables: every key below them)
// a reload applies without closing a listener or a session. Any other key
// that changed needs a restart (`mjrelay restart`, no gap either): it is
// reported and keeps its value until then.
var hotKeys = []string{
	// SMTP sessions read these as they go; the certificate is read again
	// at each reload (new connections get the new one).
	"smtp.users", "smtp.trusted_networks", "smtp.allow_insecure_auth", "smtp.max_recipients", "smtp.data_timeout",
	"smtp.proxy_protocol_from", // read for each new connection
	"smtp.tls_cert", "smtp.tls_key",
	// The sender policy and the intake are rebuilt.
	"policy.sender_check", "policy.require_dkim", "policy.require_spf", "mailjet.campaign_from_mailing",
	// The lanes: their numbers change in place; their transports are
	// built again when what they are built from changed.
	"routes", "mailjet.transport", "mailjet.smtp_host", "mailjet.smtp_port", "mailjet.smtp_tls", "mailjet.tls_ca_file", "mailjet.timeout",
	"queue.retry_min", "queue.retry_max", "queue.max_lifetime",
	// The web server is rebuilt.
	"http.users", "webhooks",
	"log.level",
}

// transportKeys are the keys the transports are built from.
var transportKeys = []string{"mailjet.", "routes.transactional.transports", "routes.transactional.api_key",
	"routes.transactional.secret_key", "routes.bulk.transports", "routes.bulk.api_key", "routes.bulk.secret_key"}

func under(key string, prefixes []string) bool {
	for _, p := range prefixes {
		if key == p || strings.HasPrefix(key, strings.TrimSuffix(p, ".")+".") {
			return true
		}
	}
	return false
}

// Reload reads the configuration again (Options.Load) and applies it:
// what can change in place changes, without closing a listener or a
// session; keys that need a restart are reported and keep their value.
// An invalid configuration is refused, with the reason naming the key,
// and the one in force stays.
func (r *Relay) Reload(context.Context) (control.Reloaded, error) {
	if r.o.Load == nil {
		return control.Reloaded{}, errors.New("this relay does not reload its configuration")
	}
	r.reloadMu.Lock()
	defer r.reloadMu.Unlock()
	if r.draining.Load() {
		return control.Reloaded{}, errors.New("this process is stopping or handing over to a new one: reload that one")
	}
	p := r.o.Process
	if p != nil {
		p.Notify(notify.Reloading, notify.MonotonicUsec())
		defer p.Notify(notify.Ready)
	}
	next, err := r.o.Load()
	if err == nil {
		var res control.Reloaded
		if res, err = r.apply(next); err == nil {
			return res, nil
		}
	}
	r.log.Error("configuration not reloaded: the one in force stays", "err", err)
	return control.Reloaded{}, err
}

// apply makes next the configuration in force, but for the keys that need
// a restart. Everything that can fail is built first; on error nothing
// changed.
func (r *Relay) apply(next *config.Config) (control.Reloaded, error) {
	cur := r.config()
	var res control.Reloaded
	for _, k := range changedKeys(cur, next) {
		if under(k, hotKeys) && r.hot(k, next) {
			res.Applied = append(res.Applied, k)
		} else {
			res.NeedRestart = append(res.NeedRestart, k)
			copyKey(next, cur, k)
		}
	}
	if len(res.NeedRestart) > 0 {
		r.log.Warn("configuration keys that need a restart keep their value until then (mjrelay restart: no connection refused)",
			"keys", res.NeedRestart)
	}

	// Built first: what can fail.
	in, err := r.newIntake(next)
	if err != nil {
		return control.Reloaded{}, err
	}
	var w *web.Server
	if r.web.Load() != nil {
		if w, err = r.newWeb(next); err != nil {
			return control.Reloaded{}, err
		}
	}
	newLanes, newTargets := r.lanes, r.targets
	rebuilt := slices.ContainsFunc(res.Applied, func(k string) bool { return under(k, transportKeys) })
	if rebuilt {
		if newLanes, newTargets, err = buildLanes(next, r.o.UpstreamRoots, r.o.Target, r.log); err != nil {
			return control.Reloaded{}, err
		}
	} else {
		newLanes = renumbered(r.lanes, next)
	}
	if err := r.smtp.Apply(smtpOptions(next)); err != nil { // reads the certificate again
		if rebuilt {
			closeUnused(newTargets, r.targets)
		}
		return control.Reloaded{}, fmt.Errorf("smtp.tls_cert: %w", err)
	}

	// Swapped: nothing fails from here on.
	r.smtp.SetIntake(in)
	r.intake.Store(in)
	if w != nil {
		r.web.Store(w)
	}
	if s := r.Sched(); s != nil {
		s.SetRetry(deliver.Retry{RetryMin: next.Queue.RetryMin.D(), RetryMax: next.Queue.RetryMax.D(), MaxLifetime: next.Queue.MaxLifetime.D()})
		retired := s.SetLanes(newLanes)
		if rebuilt {
			old, keep := r.targets, newTargets
			go func() { <-retired; closeUnused(old, keep) }()
		}
	} else if rebuilt {
		closeUnused(r.targets, newTargets)
	}
	r.lanes, r.targets = newLanes, newTargets
	if r.o.Level != nil {
		var level slog.Level
		level.UnmarshalText([]byte(next.Log.Level))
		r.o.Level.Set(level)
	}
	r.cfg.Store(next)
	r.log.Info("configuration reloaded", "applied", res.Applied, "transports_rebuilt", rebuilt)
	return res, nil
}

// hot tells whether key can change now, beyond being a hot key: the sender
// check can start using the Mailjet account only if the relay has its
// state (it started with the check on and keys set).
func (r *Relay) hot(key string, next *config.Config) bool {
	if key == "policy.sender_check" {
		return r.Account != nil || r.o.Policy != nil || next.Policy.SenderCheck == "off" || !next.HasKeys()
	}
	return true
}

// renumbered are the lanes with next's numbers and their transports.
func renumbered(ls []lanes.Lane, next *config.Config) []lanes.Lane {
	out := slices.Clone(ls)
	for i, l := range out {
		rt := next.Routes.Transactional
		if l.Class == lanes.Bulk {
			rt = next.Routes.Bulk
		}
		out[i].Concurrency, out[i].Rate, out[i].Priority = rt.Concurrency, rt.Rate, rt.Priority
		out[i].FlowBacklog, out[i].FlowDelay = rt.FlowBacklog, rt.FlowDelay.D()
	}
	return out
}

// closeUnused closes the transports of old that keep does not hold.
func closeUnused(old, keep []mailjet.Target) {
	for _, t := range old {
		if !slices.ContainsFunc(keep, func(k mailjet.Target) bool { return sameTarget(k, t) }) {
			t.Close()
		}
	}
}

// sameTarget reports whether a and b are the same transport (false for
// values that cannot be compared).
func sameTarget(a, b mailjet.Target) bool {
	ta := reflect.TypeOf(a)
	return ta == reflect.TypeOf(b) && ta != nil && ta.Comparable() && a == b
}

// changedKeys lists the keys (dotted TOML names) whose values differ; an
// array of tables (smtp.users) is one key.
func changedKeys(a, b *config.Config) []string {
	var out []string
	walk(reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem(), "", func(key string, x, y reflect.Value) {
		if !reflect.DeepEqual(x.Interface(), y.Interface()) {
			out = append(out, key)
		}
	})
	return out
}

// copyKey sets key in dst to its value in src.
func copyKey(dst, src *config.Config, key string) {
	walk(reflect.ValueOf(dst).Elem(), reflect.ValueOf(src).Elem(), "", func(k string, d, s reflect.Value) {
		if k == key {
			d.Set(s)
		}
	})
}

// walk calls fn with each leaf key of two values of the same struct type.
func walk(a, b reflect.Value, prefix string, fn func(key string, a, b reflect.Value)) {
	t := a.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := prefix + name
		if t.Field(i).Type.Kind() == reflect.Struct {
			walk(a.Field(i), b.Field(i), key+".", fn)
			continue
		}
		fn(key, a.Field(i), b.Field(i))
	}
}
