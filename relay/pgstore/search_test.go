package pgstore_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/inspect"
	"github.com/mjrelay/mjrelay/relay/pg/pgtest"
	"github.com/mjrelay/mjrelay/relay/pgstore"
	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/store/storetest"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// TestSearchLikeEmbedded: the search finds what the embedded store's
// full-text index finds, over subjects and addresses in several scripts,
// with punctuation, diacritics, prefixes and phrases.
func TestSearchLikeEmbedded(t *testing.T) {
	messages := []struct{ from, to, subject string }{
		{"invoices@acme.example", "john.doe@client.example", "Invoice INV/2026/0042"},
		{"sales@acme.example", "Jane+news@shop.example", "Re: [Odoo] Order SO042 – confirmed"},
		{"chef@bistro.example", "o'brien@irish.example", "Café crème brûlée, ÇA VA?"},
		{"hr@acme.example", "Müller@dé.example", "Ünïcödé résumé for Straße und Fuß"},
		{"news@acme.example", "list@shop.example", "Newsletter #12: spring/summer 100% off!!!"},
		{"jp@acme.example", "tanaka@jp.example", "日本語の件名 and Ελληνικά ΘΈΜΑ"},
		{"support@acme.example", "user_1@client.example", "e-mail follow_up+tag (ticket #4711) \"quoted phrase\""},
		{"noreply@acme.example", "a@b.example", "a b c ab abc"},
	}
	queries := []string{"invoice", "inv", "INV/2026", "2026/0042", "inv/2026/0042", "café", "cafe", "CREME", "brûl", "ça",
		"resume", "unicode", "ÜNÏ", "so042", "order so04", "[odoo]", "john", "john.doe", "doe", "jane+news", "jane", "news",
		"o'brien", "brien", "100%", "100", "straße", "strasse", "fuss", "日本語", "件名", "ελληνικά", "θέμα", "θεμα", "e-mail",
		"mail", "follow_up", "follow", "tag", "ticket", "#4711", "4711", `"quoted phrase"`, `"quoted`, "phrase\"", "a", "ab",
		"abc", "re:", "spring/summer", "summer", "!!!", "off!!!", "müller", "muller", "dé.example", "acme", "sales@", "@acme",
		"hr@acme", "odoo", "odoo invoice", "INVOICE 0042", "– confirmed", "wait", "", "ça va", "ÇA", "ελλην", "o",
		"b.example", "sales", "SALES@ACME.EXAMPLE", "<john.doe@client.example>", "irish.example", "dé", "(ticket", "#12:",
	}
	ctx := context.Background()
	emb, err := inspect.Open(filepath.Join(t.TempDir(), "store.db"), inspect.Options{Now: later})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	pgs := openStore(t, pgtest.DB(t), pgstore.Options{Options: store.Options{Now: later}})
	for i, m := range messages {
		at := t0.Add(time.Duration(i) * time.Second)
		for _, e := range storetest.NewFlow(at, storetest.QueueID(at, uint32(i)), m.from, []string{m.to}, m.subject).Received(nil).Events() {
			emb.Record(e)
			pgs.Record(e)
		}
	}
	for _, s := range []store.Store{emb, pgs} {
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Taken from the full-text index (they match few), and found in key
	// order (as if they matched many).
	for _, few := range []int{1000, 1} {
		pgs.SetFewWords(few)
		for _, q := range queries {
			want, got := subjects(t, emb, q), subjects(t, pgs, q)
			if !slices.Equal(got, want) {
				t.Errorf("Q=%q, %d matches taken from the index: PostgreSQL finds %q, the embedded store %q", q, few, got, want)
			}
		}
	}
}

func subjects(t *testing.T, s store.Store, q string) []string {
	t.Helper()
	p, err := s.List(context.Background(), store.Filter{Q: q})
	if err != nil {
		t.Fatalf("%T: Q=%q: %v", s, q, err)
	}
	out := []string{}
	for _, m := range p.Messages {
		out = append(out, fmt.Sprint(m.Subject))
	}
	return out
}

// TestBadText: text PostgreSQL does not take as it is (a NUL byte, bytes
// that are not UTF-8: what a client sent) is stored cleaned, found by
// its words, and costs no other record.
func TestBadText(t *testing.T) {
	s := openStore(t, pgtest.DB(t), pgstore.Options{Options: store.Options{Now: later, KeepBodies: time.Hour}})
	raw := []byte("Subject: Re\x00sum\xe9\r\n\r\nbody \x00\xff\r\n")
	var evs []trafficlog.Event
	for i, subject := range []string{"Re\x00sumé \xff Ünïcödé", "fine"} {
		at := t0.Add(time.Duration(i) * time.Second)
		evs = append(evs, storetest.NewFlow(at, storetest.QueueID(at, uint32(i)), "a\x00@acme.example", []string{"b\xff@b.example"}, subject).
			Received(raw).Events()...)
	}
	for _, e := range evs {
		s.Record(e)
	}
	ctx := context.Background()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if h := s.Health(); h != (store.Health{}) {
		t.Errorf("health %+v", h)
	}
	for _, q := range []string{"resumé", "unicode", "fine"} {
		if got := subjects(t, s, q); len(got) != 1 {
			t.Errorf("Q=%q finds %q", q, got)
		}
	}
	r, n, err := s.Raw(ctx, evs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(r); !bytes.Equal(b, raw) || n != int64(len(raw)) {
		t.Errorf("raw = %q, want the bytes received", b)
	}
}
