package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/config"
)

// TestLoggerDurations checks that the process log writes durations as
// Go duration strings, however they are passed, groups included.
func TestLoggerDurations(t *testing.T) {
	var buf bytes.Buffer
	log, _ := newLogger(config.Default(), &buf)
	log.Info("x", "grace", 30*time.Second, slog.Duration("retry", 90*time.Second),
		"refresh", config.Duration(5*time.Minute), slog.Group("lane", "delay", time.Second), "count", 3)
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]any{"grace": "30s", "retry": "1m30s", "refresh": "5m0s", "count": 3.0} {
		if got[key] != want {
			t.Errorf("%s = %#v, want %#v (line %s)", key, got[key], want, buf.Bytes())
		}
	}
	if lane, _ := got["lane"].(map[string]any); lane["delay"] != "1s" {
		t.Errorf("lane.delay = %#v, want \"1s\"", lane["delay"])
	}
}
