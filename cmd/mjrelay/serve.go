package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/mjrelay/mjrelay/relay"
	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/handover"
	"github.com/mjrelay/mjrelay/relay/notify"
	"github.com/mjrelay/mjrelay/relay/pid1"
)

const (
	// shutdownGrace bounds how long SIGTERM waits for sessions and deliveries.
	shutdownGrace = 30 * time.Second
	// drainLimit bounds how long a process that handed over to a new one
	// waits for its SMTP sessions to end. Closing one would fail the rest
	// of the client's batch (Odoo sends up to 1,000 mails per
	// connection), so it is long; idle clients are closed sooner by
	// smtp.read_timeout.
	drainLimit = 10 * time.Minute
)

func runServe(ctx context.Context, args []string, stderr io.Writer) int {
	fs, path := configFlag("serve", args, stderr)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if pid1.Wanted() {
		// As PID 1 (a container), be the init of the relay server.
		log, _ := newLogger(config.Default(), stderr)
		return pid1.Run(os.Args, log)
	}
	// Reloads (SIGHUP) and restarts (SIGUSR2) are this process's from its
	// start on: one that comes while it starts is handled once it is ready.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	cfg, fromEnv, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintln(stderr, "mjrelay:", err)
		return 1
	}
	log, level := newLogger(cfg, stderr)
	tuneGC()
	b := currentBuild()
	log.Info("mjrelay starting", "version", b.Version, "revision", b.Revision, "config", *path, "data_dir", cfg.DataDir, "pid", os.Getpid())
	if len(fromEnv) > 0 {
		log.Info("configuration from the environment", "variables", fromEnv)
	}
	if len(cfg.SMTP.Users) == 0 && len(cfg.SMTP.TrustedNetworks) == 0 {
		log.Warn("nobody can send: add an SMTP login ([[smtp.users]], or MJRELAY_SMTP_USER and MJRELAY_SMTP_PASSWORD) or smtp.trusted_networks")
	}
	proc, err := handover.New(handover.Options{Logger: log})
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	defer proc.Stop()
	load := func() (*config.Config, error) {
		c, _, err := loadConfig(*path)
		return c, err
	}
	r, err := relay.Start(cfg, relay.Options{Logger: log, Process: proc, Load: load, Level: level})
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	if err := proc.Ready(); err != nil {
		log.Warn("cannot tell the former process that this one is ready", "err", err)
	}
	log.Info("mjrelay ready", "pid", os.Getpid())
	for {
		select {
		case <-ctx.Done():
			proc.Notify(notify.Stopping)
			// The copies of the listeners kept for a successor go: once
			// SMTP stops accepting, new connections are refused.
			proc.Stop()
			log.Info("stopping: no new connections; open sessions and deliveries may finish", "grace", shutdownGrace)
			sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
			defer cancel()
			if err := r.Shutdown(sctx); err != nil {
				log.Warn("shutdown incomplete", "err", err)
			}
			log.Info("stopped")
			return 0
		case <-r.Replaced():
			log.Info("handed over: no new connections here; exiting once the open sessions end", "limit", drainLimit)
			dctx, cancel := context.WithTimeout(context.Background(), drainLimit)
			defer cancel()
			go func() {
				select {
				case <-ctx.Done(): // SIGTERM meanwhile: the usual grace
					time.AfterFunc(shutdownGrace, cancel)
				case <-dctx.Done():
				}
			}()
			if err := r.Shutdown(dctx); err != nil {
				log.Warn("sessions cut short", "err", err)
			}
			log.Info("exited after the handover")
			return 0
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				log.Info("SIGHUP: reloading the configuration", "config", *path)
				r.Reload(ctx)
			case syscall.SIGUSR2:
				log.Info("SIGUSR2: restarting")
				go func() {
					rctx, cancel := context.WithTimeout(context.Background(), drainLimit+time.Minute)
					defer cancel()
					r.Restart(rctx) // logs its outcome
				}()
			}
		}
	}
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

// newLogger builds the process log: JSON lines at cfg.Log.Level (the
// returned level, which a reload changes), with durations written as "30s"
// rather than nanoseconds.
func newLogger(cfg *config.Config, w io.Writer) (*slog.Logger, *slog.LevelVar) {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.Log.Level))
	lv := new(slog.LevelVar)
	lv.Set(level)
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lv, ReplaceAttr: readableDuration})), lv
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
