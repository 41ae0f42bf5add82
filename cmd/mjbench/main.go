// Command mjbench is the load generator and the local upstream sink of the
// mjrelay-versus-Postfix benchmark (cmd/mjbench/bench-vs-postfix.sh, see
// docs/BENCHMARKS.md).
//
//	mjbench gencert  --dir D                       CA + server certificate for the sink
//	mjbench sink     --listen A --http A --tls-cert F --tls-key F --user K --pass S
//	mjbench load     --addr A --conns 32 --size 10240 --n 20000 [--rate R] [--sink URL] [--rss-pid P] [--cpu-pid P] [--json]
//	mjbench idle     --addr A --conns 1000 [--hold 5s] [--rss-pid P] [--json]
//	mjbench burst    --addr A --bulk 20000 --sink URL [--probe-every 10ms] [--json]
//	mjbench ping     --addr A [--timeout 30s]      wait for a 220 greeting
//	mjbench freeport [--n 1]                       print free 127.0.0.1 ports
//	mjbench table    --in results.jsonl [--out F]  the side-by-side table
//
// The sink emulates Mailjet's SMTP relay (STARTTLS, AUTH PLAIN with the API
// key and secret) and discards what it receives, recording per message kind
// (the X-Mjbench-Kind header) how many arrived, when the last one did, and
// each message's end-to-end latency (arrival minus the X-Mjbench-Sent header
// the load generator wrote just before MAIL FROM). Its HTTP endpoint serves
// these counters to the load generator:
//
//	GET  /count            {"total":N,"kinds":{"load":{"count":N,"last_ns":T},...}}
//	GET  /lat?kind=K       {"lat_us":[...]} end-to-end latencies of kind K
//	POST /reset[?kind=K]   forget kind K (all kinds without it)
//	POST /delay?d=2ms      delay each reply to the end of DATA
//
// Every measuring command prints a human summary, or one JSON object with
// --json, which the script collects into results.jsonl for "mjbench table".
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

var commands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) error{
	"gencert":  runGencert,
	"sink":     runSink,
	"load":     runLoad,
	"idle":     runIdle,
	"burst":    runBurst,
	"ping":     runPing,
	"freeport": runFreeport,
	"table":    runTable,
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || commands[args[0]] == nil {
		fmt.Fprintln(stderr, "usage: mjbench gencert|sink|load|idle|burst|ping|freeport|table [flags] (mjbench CMD -h for flags)")
		return 2
	}
	if err := commands[args[0]](ctx, args[1:], stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "mjbench %s: %v\n", args[0], err)
		return 1
	}
	return 0
}
