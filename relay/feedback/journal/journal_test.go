package journal_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/mjrelay/mjrelay/relay/feedback"
	"github.com/mjrelay/mjrelay/relay/feedback/feedbacktest"
	"github.com/mjrelay/mjrelay/relay/feedback/journal"
)

func TestConformance(t *testing.T) {
	feedbacktest.Run(t, func(t *testing.T) feedbacktest.Open {
		dir := t.TempDir()
		return func(t *testing.T) feedback.Outbox {
			j, err := journal.Open(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			return j
		}
	})
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	j, err := journal.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if _, err := journal.Open(dir, nil); err != journal.ErrLocked {
		t.Fatalf("second open: %v", err)
	}
}

// TestDamage: a torn last line is dropped; a damaged line in the middle
// costs only itself and is quarantined.
func TestDamage(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	j, _ := journal.Open(dir, nil)
	j.Add(ctx, []feedback.Item{feedbacktest.Item("m1", "a@x")})
	j.Add(ctx, []feedback.Item{feedbacktest.Item("m2", "a@x")})
	j.Add(ctx, []feedback.Item{feedbacktest.Item("m3", "a@x")})
	j.Close()
	p := filepath.Join(dir, "journal")
	data, _ := os.ReadFile(p)
	// Damage the second line, and append half a line.
	lines := 0
	for i := range data {
		if data[i] == '\n' {
			lines++
			if lines == 1 {
				data[i+20] ^= 0x55
			}
		}
	}
	data = append(data, []byte("0badc0de {\"op\":\"a\"")...)
	os.WriteFile(p, data, 0o600)
	j, err := journal.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	es, _ := j.List(ctx, 10)
	if len(es) != 2 || es[0].Message != "m1" || es[1].Message != "m3" {
		t.Fatalf("kept %+v", es)
	}
	if q, _ := os.ReadDir(filepath.Join(dir, "quarantine")); len(q) != 1 {
		t.Fatalf("quarantine holds %d files", len(q))
	}
	// Appends go on cleanly after the dropped tail.
	j.Add(ctx, []feedback.Item{feedbacktest.Item("m4", "a@x")})
	j.Close()
	j2, err := journal.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	if es, _ := j2.List(ctx, 10); len(es) != 3 {
		t.Fatalf("after append: %d", len(es))
	}
}
