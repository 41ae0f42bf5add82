package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/mjrelay/mjrelay/relay"
	"github.com/mjrelay/mjrelay/relay/config"
)

// shutdownGrace bounds how long SIGTERM waits for sessions and deliveries.
const shutdownGrace = 30 * time.Second

func runServe(ctx context.Context, args []string, stderr io.Writer) int {
	fs, path := configFlag("serve", args, stderr)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, "mjrelay:", err)
		return 1
	}
	log := newLogger(cfg, stderr)
	tuneGC()
	log.Info("mjrelay starting", "version", version, "config", *path, "data_dir", cfg.DataDir)
	r, err := relay.Start(cfg, relay.Options{Logger: log})
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	<-ctx.Done()
	log.Info("stopping: no new connections; open sessions and deliveries may finish", "grace", shutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := r.Shutdown(sctx); err != nil {
		log.Warn("shutdown cut short", "err", err)
	}
	log.Info("stopped")
	return 0
}

// tuneGC applies relay.GCPercent and relay.MemoryLimit unless GOGC or
// GOMEMLIMIT is set in the environment.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(relay.GCPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(relay.MemoryLimit)
	}
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.Log.Level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}
