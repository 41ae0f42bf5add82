package main

import (
	"context"
	"fmt"
	"io"

	"github.com/mjrelay/mjrelay/mailjet/dnscheck"
	"github.com/mjrelay/mjrelay/relay"
	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/odoo"
)

// checkOdoo checks [odoo] when it is set: the URL answers Odoo's XML-RPC,
// the login and API key are accepted, and the user has the rights the
// reports need (check_access_rights, which changes nothing). It stops at
// the first failure.
func checkOdoo(ctx context.Context, cfg *config.Config) []dnscheck.Result {
	o := cfg.Odoo
	if !o.Enabled() {
		return nil
	}
	c := odoo.New(relay.OdooOptions(cfg))
	var out []dnscheck.Result
	fail := func(check, fix string, err error) []dnscheck.Result {
		return append(out, dnscheck.Result{Check: check, Status: dnscheck.Fail, Detail: err.Error(), Fix: fix})
	}
	v, err := c.Version(ctx)
	if err != nil {
		return fail("odoo-url", "set odoo.url to Odoo's base URL (what the browser shows before /odoo or /web), reachable from this host", err)
	}
	out = append(out, dnscheck.Result{Check: "odoo-url", Status: dnscheck.OK, Detail: fmt.Sprintf("Odoo %s answers at %s", v, o.URL)})
	uid, err := c.Authenticate(ctx)
	if err != nil {
		return fail("odoo-login", "check odoo.db and odoo.login, and create an API key for that user in Odoo (Preferences → Account Security → New API Key) for odoo.api_key or ODOO_API_KEY", err)
	}
	out = append(out, dnscheck.Result{Check: "odoo-login", Status: dnscheck.OK,
		Detail: fmt.Sprintf("login %s accepted on database %s (user id %d)", o.Login, o.DB, uid)})
	blacklist := o.Reports("spam") || o.Reports("unsub") && o.UnsubBlacklist
	if err := c.CheckRights(ctx, blacklist); err != nil {
		return fail("odoo-rights", "give the user the rights named above in Odoo (Settings → Users), or use an administrator's login", err)
	}
	what := "process mail (message_process)"
	if blacklist {
		what += " and write mail.blacklist"
	}
	return append(out, dnscheck.Result{Check: "odoo-rights", Status: dnscheck.OK, Detail: "the user may " + what})
}

func printOdooCheck(w io.Writer, cfg *config.Config, rs []dnscheck.Result) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintf(w, "\nOdoo %s\n", cfg.Odoo.URL)
	printResults(w, rs, false)
}
