package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/mjrelay/mjrelay/mailjet"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/mjrelay/mjrelay/mailjet/account"
	"github.com/mjrelay/mjrelay/mailjet/dnscheck"
	"github.com/mjrelay/mjrelay/relay/config"
)

// checkReport is the outcome of `mjrelay check`; --json prints it as is.
type checkReport struct {
	OK      bool                    `json:"ok"`
	API     dnscheck.Result         `json:"api"`
	Senders []account.Sender        `json:"senders"`
	Domains []dnscheck.DomainReport `json:"domains"`
	// Odoo are the [odoo] checks (none when the feedback is off).
	Odoo []dnscheck.Result `json:"odoo,omitempty"`
	cfg  *config.Config
}

type domainFlags []string

func (d *domainFlags) String() string { return strings.Join(*d, ",") }
func (d *domainFlags) Set(v string) error {
	v = account.NormalizeDomain(v)
	if v == "" || strings.ContainsAny(v, "@ /") {
		return fmt.Errorf("%q is not a domain", v)
	}
	*d = append(*d, v)
	return nil
}

// runCheck implements `mjrelay check --config FILE [--domain D ...]
// [--dns HOST:PORT] [--json]`. Exit status: 0 when every required check
// passes, 1 when one fails, 2 for usage or configuration errors.
func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, path := configFlag("check", args, stderr)
	var domains domainFlags
	fs.Var(&domains, "domain", "domain to check (repeatable; default: every domain of the Mailjet account)")
	dnsServer := fs.String("dns", "", "send DNS queries to `HOST:PORT` instead of the system resolver")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	timeout := fs.Duration("timeout", 2*time.Minute, "overall time limit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mjrelay check: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	server := *dnsServer
	if server != "" {
		if _, _, err := net.SplitHostPort(server); err != nil {
			server = net.JoinHostPort(server, "53")
			if _, _, err := net.SplitHostPort(server); err != nil {
				fmt.Fprintf(stderr, "mjrelay check: --dns %q is not HOST:PORT\n", *dnsServer)
				return 2
			}
		}
	}
	cfg, _, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintln(stderr, "mjrelay check:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	rep := buildCheckReport(ctx, cfg, domains, dnscheck.Checker{Resolver: dnscheck.NewResolver(server)})
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintln(stderr, "mjrelay check:", err)
			return 2
		}
	} else {
		printCheckReport(stdout, rep)
	}
	if !rep.OK {
		return 1
	}
	return 0
}

func buildCheckReport(ctx context.Context, cfg *config.Config, domains []string, dns dnscheck.Checker) *checkReport {
	rep := &checkReport{API: dnscheck.Result{Check: "mailjet-api", Record: cfg.Mailjet.APIURL},
		Senders: []account.Sender{}, Domains: []dnscheck.DomainReport{}, cfg: cfg}
	var snap *account.Snapshot
	if !cfg.HasKeys() {
		rep.API.Status, rep.API.Detail = dnscheck.Fail, "no Mailjet keys configured"
		rep.API.Fix = "set mailjet.api_key and mailjet.secret_key (or MJ_APIKEY_PUBLIC/MJ_APIKEY_PRIVATE)"
	} else if client, err := account.NewClient(cfg.Mailjet.APIURL, cfg.Mailjet.APIKey, cfg.Mailjet.SecretKey.Reveal(), nil, 0); err != nil {
		rep.API.Status, rep.API.Detail, rep.API.Fix = dnscheck.Fail, err.Error(), "fix mailjet.api_url"
	} else if snap, err = client.Fetch(ctx); err != nil {
		rep.API.Status, rep.API.Detail = dnscheck.Fail, err.Error()
		var ae *account.AuthError
		if errors.As(err, &ae) {
			rep.API.Fix = "copy the API key and secret key from Mailjet > Account settings > API keys into mailjet.api_key/mailjet.secret_key"
		} else {
			rep.API.Fix = "check mailjet.api_url and the network path to the Mailjet API, then run the check again"
		}
	} else {
		rep.API.Status = dnscheck.OK
		rep.API.Detail = fmt.Sprintf("API key %s accepted: %d senders, %d domains", mailjet.MaskKey(cfg.Mailjet.APIKey), len(snap.Senders), len(snap.Domains))
		rep.Senders = snap.Senders
	}
	if snap != nil && len(domains) == 0 {
		for _, d := range snap.Domains {
			domains = append(domains, account.NormalizeDomain(d.Domain))
		}
		if len(domains) == 0 {
			rep.Domains = append(rep.Domains, dnscheck.DomainReport{Checks: []dnscheck.Result{{
				Check: "domain", Status: dnscheck.Fail, Detail: "the Mailjet account has no sending domain",
				Fix: "add your domain in Mailjet > Account settings > Senders & Domains"}}})
		}
	}
	// Missing Odoo addresses fail here: `mjrelay check` is run to see
	// whether Odoo's mail will go through.
	ready := dnscheck.Readiness{MissingSender: dnscheck.Fail, RequireDKIM: cfg.Policy.RequireDKIM, RequireSPF: cfg.Policy.RequireSPF}
	slices.Sort(domains)
	for _, name := range slices.Compact(domains) {
		rep.Domains = append(rep.Domains, ready.Domain(ctx, dns, snap, name))
	}
	rep.Odoo = checkOdoo(ctx, cfg)
	rep.OK = checkFailures(rep) == 0
	return rep
}

// checkFailures counts the failed checks of the report.
func checkFailures(rep *checkReport) int {
	n := dnscheck.Failures(append([]dnscheck.Result{rep.API}, rep.Odoo...))
	for _, d := range rep.Domains {
		n += dnscheck.Failures(d.Checks)
	}
	return n
}

func printCheckReport(w io.Writer, rep *checkReport) {
	fmt.Fprintf(w, "Mailjet API %s\n", rep.API.Record)
	printResults(w, []dnscheck.Result{rep.API}, false)

	if len(rep.Senders) > 0 {
		fmt.Fprintln(w, "\nSenders")
		rows := [][]string{{"STATUS", "TYPE", "EMAIL"}}
		for _, s := range rep.Senders {
			rows = append(rows, []string{s.Status, s.EmailType, s.Email})
		}
		printTable(w, rows)
	}
	var withAccount []dnscheck.DomainReport
	for _, d := range rep.Domains {
		if d.Mailjet != nil {
			withAccount = append(withAccount, d)
		}
	}
	if len(withAccount) > 0 {
		fmt.Fprintln(w, "\nDomains")
		rows := [][]string{{"DOMAIN", "DKIM", "SPF", "LAST CHECK"}}
		for _, d := range withAccount {
			last := "never"
			if !d.Mailjet.LastCheckAt.IsZero() {
				last = d.Mailjet.LastCheckAt.UTC().Format(time.RFC3339)
			}
			rows = append(rows, []string{d.Domain, d.Mailjet.DKIMStatus, d.Mailjet.SPFStatus, last})
		}
		printTable(w, rows)
	}
	for _, d := range rep.Domains {
		title := d.Domain
		if title == "" {
			title = "account"
		}
		fmt.Fprintf(w, "\n%s\n", title)
		printResults(w, d.Checks, true)
	}
	printOdooCheck(w, rep.cfg, rep.Odoo)
	if rep.OK {
		fmt.Fprintln(w, "\nResult: OK")
	} else {
		fmt.Fprintf(w, "\nResult: FAIL (%d failed checks)\n", checkFailures(rep))
	}
}

// printResults prints one aligned line per check, with the fix indented
// below it.
func printResults(w io.Writer, rs []dnscheck.Result, showRecord bool) {
	cw, rw := 0, 0
	for _, r := range rs {
		cw, rw = max(cw, len(r.Check)), max(rw, len(r.Record))
	}
	for _, r := range rs {
		if showRecord {
			fmt.Fprintf(w, "  %-4s  %-*s  %-*s  %s\n", r.Status, cw, r.Check, rw, r.Record, r.Detail)
		} else {
			fmt.Fprintf(w, "  %-4s  %s\n", r.Status, r.Detail)
		}
		if r.Fix != "" && r.Status != dnscheck.OK {
			fmt.Fprintf(w, "        fix: %s\n", r.Fix)
		}
	}
}

func printTable(w io.Writer, rows [][]string) {
	widths := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, c := range row {
			widths[i] = max(widths[i], len(c))
		}
	}
	for _, row := range rows {
		var b strings.Builder
		for i, c := range row {
			if i == len(row)-1 {
				b.WriteString("  " + c)
			} else {
				fmt.Fprintf(&b, "  %-*s", widths[i], c)
			}
		}
		fmt.Fprintln(w, b.String())
	}
}
