package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mjrelay/mjrelay/relay/control"
)

// runReload asks the running relay to read its configuration file again
// (as SIGHUP does) and prints what changed; it exits 1 when the relay
// refused the new configuration (the one in force stays).
func runReload(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, code := processClient("reload", args, stderr)
	if c == nil {
		return code
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	res, err := c.Reload(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "mjrelay reload: not reloaded, the configuration in force stays:", err)
		return 1
	}
	fmt.Fprintf(stdout, "reloaded; applied: %s\n", list(res.Applied))
	if len(res.NeedRestart) > 0 {
		fmt.Fprintf(stdout, "these keys need a restart (mjrelay restart) and keep their value until then: %s\n", list(res.NeedRestart))
	}
	return 0
}

// runRestart asks the running relay to hand over to a new process started
// from the binary on disk (as SIGUSR2 does) and waits until it serves.
func runRestart(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, code := processClient("restart", args, stderr)
	if c == nil {
		return code
	}
	ctx, cancel := context.WithTimeout(ctx, drainLimit+5*time.Minute)
	defer cancel()
	res, err := c.Restart(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "mjrelay restart:", err)
		return 1
	}
	fmt.Fprintf(stdout, "restarted: process %d serves now; the former one exits once its sessions end\n", res.PID)
	return 0
}

// processClient is a client of the running relay's control socket, found
// through --config's data_dir.
func processClient(name string, args []string, stderr io.Writer) (*control.Client, int) {
	fs, path := configFlag(name, args, stderr)
	if err := fs.Parse(args); err != nil {
		return nil, 2
	}
	cfg, _, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintf(stderr, "mjrelay %s: %v\n", name, err)
		return nil, 1
	}
	return control.NewClient(cfg.ControlSocket()), 0
}

func list(keys []string) string {
	if len(keys) == 0 {
		return "nothing"
	}
	return strings.Join(keys, ", ")
}
