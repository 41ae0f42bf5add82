// Command mjrelay is an SMTP relay between Odoo and Mailjet.
//
//	mjrelay serve --config FILE        run the relay
//	mjrelay reload --config FILE       make the running relay read its configuration again
//	mjrelay restart --config FILE      hand the running relay over to a new process (upgrade)
//	mjrelay check --config FILE ...    check the Mailjet account and DNS
//	mjrelay queue list|retry ID|--all|delete ID [--config FILE]
//	mjrelay log --config FILE [filters]  search the traffic store
//	mjrelay migrate --config FILE --to-cluster  move data_dir into the cluster's database
//	mjrelay hash-password              read a password, print its bcrypt hash
//	mjrelay version                    version and VCS revision (also --version)
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set for release builds with -ldflags "-X main.version=v1.2.3";
// otherwise `mjrelay version` reports the module version and VCS revision
// that Go recorded in the binary (see buildOf).
var version = "dev"

const usage = `usage:
  mjrelay serve --config FILE
  mjrelay reload --config FILE    (the running relay reads its configuration again, as on SIGHUP)
  mjrelay restart --config FILE   (a new process from the binary on disk takes over, as on SIGUSR2)
  mjrelay check --config FILE [--domain D ...] [--dns HOST:PORT] [--json]
  mjrelay queue [--config FILE] list | retry ID | retry --all | delete ID
  mjrelay log --config FILE [--state S] [--class C] [--feedback F] [--from A] [--to A] [-q TEXT]
              [--since T] [--until T] [--limit N] [--cursor C] [--json] [ID] [--raw ID]
  mjrelay migrate --config FILE --to-cluster   (data_dir's queue and history into cluster.postgres_url)
  mjrelay hash-password   (asks twice without echo on a terminal; else reads a line on stdin)
  mjrelay version         (or --version)
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stderr)
	case "reload":
		return runReload(ctx, args[1:], stdout, stderr)
	case "restart":
		return runRestart(ctx, args[1:], stdout, stderr)
	case "check":
		return runCheck(ctx, args[1:], stdout, stderr)
	case "queue":
		return runQueue(ctx, args[1:], stdout, stderr)
	case "log":
		return runLog(ctx, args[1:], stdout, stderr)
	case "migrate":
		return runMigrate(ctx, args[1:], stdout, stderr)
	case "hash-password":
		return runHashPassword(stdin, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, currentBuild())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "mjrelay: unknown command %q\n%s", args[0], usage)
	return 2
}

// configFlag parses --config (default ./mjrelay.toml, or $MJRELAY_CONFIG).
func configFlag(name string, args []string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("mjrelay "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := os.Getenv("MJRELAY_CONFIG")
	if def == "" {
		def = "mjrelay.toml"
	}
	return fs, fs.String("config", def, "configuration file")
}
