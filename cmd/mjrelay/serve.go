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
	cfg, fromEnv, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintln(stderr, "mjrelay:", err)
		return 1
	}
	log := newLogger(cfg, stderr)
	tuneGC()
	b := currentBuild()
	log.Info("mjrelay starting", "version", b.Version, "revision", b.Revision, "config", *path, "data_dir", cfg.DataDir)
	if len(fromEnv) > 0 {
		log.Info("configuration from the environment", "variables", fromEnv)
	}
	if len(cfg.SMTP.Users) == 0 && len(cfg.SMTP.TrustedNetworks) == 0 {
		log.Warn("nobody can send: add an SMTP login ([[smtp.users]], or MJRELAY_SMTP_USER and MJRELAY_SMTP_PASSWORD) or smtp.trusted_networks")
	}
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
		log.Warn("shutdown incomplete", "err", err)
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

// newLogger builds the process log: JSON lines at cfg.Log.Level, with
// durations written as "30s" rather than nanoseconds.
func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.Log.Level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: readableDuration}))
}

// readableDuration is a slog ReplaceAttr that formats time.Duration and
// config.Duration values with their String method ("1m30s").
func readableDuration(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindDuration:
		a.Value = slog.StringValue(a.Value.Duration().String())
	case slog.KindAny:
		if d, ok := a.Value.Any().(config.Duration); ok {
			a.Value = slog.StringValue(d.D().String())
		}
	}
	return a
}
