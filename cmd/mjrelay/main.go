// Command mjrelay is an SMTP relay between Odoo and Mailjet.
//
//	mjrelay serve --config FILE        run the relay
//	mjrelay check --config FILE ...    check the Mailjet account and DNS
//	mjrelay queue list|retry ID|--all|delete ID [--config FILE]
//	mjrelay log --config FILE [filters]  search the traffic store
//	mjrelay hash-password              read a password on stdin, print its bcrypt hash
//	mjrelay version
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"golang.org/x/crypto/bcrypt"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage:
  mjrelay serve --config FILE
  mjrelay check --config FILE [--domain D ...] [--dns HOST:PORT] [--json]
  mjrelay queue [--config FILE] list | retry ID | retry --all | delete ID
  mjrelay log --config FILE [--state S] [--class C] [--from A] [--to A] [-q TEXT]
              [--since T] [--until T] [--limit N] [--cursor C] [--json] [ID] [--raw ID]
  mjrelay hash-password   (reads the password on stdin)
  mjrelay version
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
	case "check":
		return runCheck(ctx, args[1:], stdout, stderr)
	case "queue":
		return runQueue(ctx, args[1:], stdout, stderr)
	case "log":
		return runLog(ctx, args[1:], stdout, stderr)
	case "hash-password":
		return runHashPassword(stdin, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "mjrelay", version)
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

func runHashPassword(stdin io.Reader, stdout, stderr io.Writer) int {
	if f, ok := stdin.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprint(stderr, "Password (the input is echoed): ")
		}
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintln(stderr, "mjrelay hash-password:", err)
		return 1
	}
	pw := strings.TrimRight(line, "\r\n")
	switch {
	case pw == "":
		fmt.Fprintln(stderr, "mjrelay hash-password: empty password")
		return 1
	case len(pw) > 72:
		fmt.Fprintln(stderr, "mjrelay hash-password: bcrypt takes at most 72 bytes")
		return 1
	}
	for _, r := range pw {
		if r > 0x7e || r < 0x20 {
			fmt.Fprintln(stderr, "mjrelay hash-password: warning: Odoo (Python smtplib) can only send ASCII passwords")
			break
		}
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		fmt.Fprintln(stderr, "mjrelay hash-password:", err)
		return 1
	}
	fmt.Fprintln(stdout, string(h))
	return 0
}
