package main

import (
	"context"
	"fmt"
	"io"

	"github.com/mjrelay/mjrelay/relay"
)

// runMigrate: `mjrelay migrate --config FILE --to-cluster` moves an
// embedded node's queue and traffic history into the cluster's database
// named by the config's cluster.postgres_url. Safe to run twice.
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, path := configFlag("migrate", args, stderr)
	toCluster := fs.Bool("to-cluster", false, "move data_dir's queue and traffic history into cluster.postgres_url")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if !*toCluster || fs.NArg() > 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cfg, _, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintln(stderr, "mjrelay:", err)
		return 1
	}
	log, _ := newLogger(cfg, stderr)
	moved, skipped, err := relay.MigrateQueue(ctx, cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "mjrelay migrate: queue:", err)
		return 1
	}
	fmt.Fprintf(stdout, "queue: %d message(s) moved into the cluster, %d already there\n", moved, skipped)
	if err := relay.MigrateStore(ctx, cfg, log); err != nil {
		fmt.Fprintln(stderr, "mjrelay migrate: traffic history:", err)
		return 1
	}
	fmt.Fprintln(stdout, "traffic history: moved into the cluster")
	return 0
}
