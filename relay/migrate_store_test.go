package relay_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/mailjet/webhook"
	"github.com/mjrelay/mjrelay/relay"
	"github.com/mjrelay/mjrelay/relay/config"
	"github.com/mjrelay/mjrelay/relay/pg/pgtest"
	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/store/storetest"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// TestMigrateStore: an embedded node's traffic history (messages with
// their recipients, timelines, raw bodies and Mailjet's events; refusals;
// statistics) is in the cluster's store after the migration, as the
// embedded store shows it; a second run leaves every table as it was;
// a message the cluster recorded meanwhile keeps its row and gains the
// embedded events it lacked; Mailjet's later events join the migrated
// messages.
func TestMigrateStore(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Store.KeepBodies = config.Duration(time.Hour)
	emb, err := relay.OpenStore(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	sample := storetest.NewSample(t0)
	evs := sample.Events
	for i := range 300 { // more than one chunk of the migration
		at := t0.Add(time.Duration(i) * time.Second)
		ok := trafficlog.RcptResult{Rcpt: fmt.Sprintf("r%d@x.example", i), Status: "delivered", Reply: mailjet.ParseReply("250 OK"),
			MessageID: int64(1e15) + int64(i)}
		evs = append(evs, storetest.NewFlow(at, storetest.QueueID(at, uint32(100+i)), "s@acme.example", []string{ok.Rcpt}, "bulk "+fmt.Sprint(i)).
			Received([]byte(fmt.Sprintf("Subject: bulk %d\r\n\r\nbody\r\n", i))).Attempt("api", "250 OK", ok).Delivered().Events()...)
	}
	evs[0].Unsubscribe = "https://erp.example.com/mailing/3/unsubscribe_oneclick?hash_token=secret"
	note := trafficlog.NewFeedback(sample.IDs["newsletter"], trafficlog.FeedbackNote{Rcpt: "old@gone.example", Action: "bounce",
		Result: trafficlog.FeedbackQueued, Reason: "mailjet bounce: user unknown"})
	note.Time = t0.Add(time.Minute)
	storetest.Feed(t, emb, append(evs, note), sample.Mailjet...)
	emb.Close()

	url := pgtest.DB(t)
	// The same node's config, in cluster mode.
	ccfg := *cfg
	ccfg.Cluster.PostgresURL, ccfg.Cluster.NodeName = config.Secret(url), "node1"
	// The cluster delivered the deferred message before the history came.
	node, err := relay.OpenStore(&ccfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	retry := sample.IDs["retry"]
	ok := trafficlog.RcptResult{Rcpt: "buyer@slow.example", Status: "delivered", Reply: mailjet.ParseReply("250 OK")}
	later := storetest.NewFlow(t0.Add(20*time.Second), retry, "sales@acme.example", []string{ok.Rcpt}, "Quotation S00017").
		Attempt("smtp", "451", ok).Attempt("smtp", "250 OK", ok).Delivered().Events()[1:]
	storetest.Feed(t, node, later)

	ctx := context.Background()
	if err := relay.MigrateStore(ctx, &ccfg, nil); err != nil {
		t.Fatal(err)
	}
	emb, err = relay.ReadStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Close()
	all := storetest.IDs(t, emb, store.Filter{Limit: 1000})
	if len(all) != 306 {
		t.Fatalf("the embedded store holds %d messages, want 306", len(all))
	}
	for _, id := range all {
		want, got := detail(t, emb, id), detail(t, node, id)
		if id == retry {
			want = "" // checked below
		} else if got != want {
			t.Errorf("message %s in the cluster:\n%s\nembedded:\n%s", id, got, want)
		}
	}
	m, err := node.Get(ctx, retry)
	if err != nil {
		t.Fatal(err)
	}
	if m.State != store.StateSent || !slices.Equal(storetest.Kinds(m), []string{"received", "policy", "attempt", "deferred", "attempt", "delivered"}) {
		t.Errorf("the message the cluster delivered: %s, %v", m.State, storetest.Kinds(m))
	}
	filters := []store.Filter{{Limit: 1000}, {Q: "bulk", Limit: 1000}, {To: "x.example", Limit: 1000}, {State: "refused"},
		{Feedback: "any"}}
	// The reason filter finds the same messages (the labels migrated).
	problems, err := emb.List(ctx, store.Filter{State: "failed,bounced,refused", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range problems.Messages {
		if m.Why == "" {
			t.Fatalf("%s (%s) has no reason label", m.ID, m.State)
		}
		filters = append(filters, store.Filter{Reason: m.Why})
	}
	for _, f := range filters {
		if got, want := storetest.IDs(t, node, f), storetest.IDs(t, emb, f); !slices.Equal(got, want) {
			t.Errorf("List(%+v): %d in the cluster, %d embedded", f, len(got), len(want))
		}
	}
	// The statistics: the embedded store's, and what the cluster counted.
	want := totals(t, emb)
	for _, k := range []string{"received", "attempt", "delivered", "final"} {
		want[k]++
	}
	if got := totals(t, node); !maps.Equal(got, want) {
		t.Errorf("statistics in the cluster: %v, want %v", got, want)
	}

	before := tables(t, url)
	if err := relay.MigrateStore(ctx, &ccfg, nil); err != nil {
		t.Fatal(err)
	}
	if after := tables(t, url); after != before {
		t.Errorf("a second run changed the tables:\n%s\nwas\n%s", after, before)
	}

	// Mailjet's events of migrated messages join them: by queue id, and
	// by Mailjet's id alone.
	first, second := storetest.QueueID(t0, 100), storetest.QueueID(t0.Add(time.Second), 101)
	mj := []webhook.Event{storetest.Mailjet(t0.Add(time.Hour), "bounce", first, "r0@x.example", 1e15),
		storetest.Mailjet(t0.Add(time.Hour), "spam", "", "r1@x.example", 1e15+1)}
	storetest.Feed(t, node, nil, mj...)
	for id, want := range map[string]store.State{first: store.StateBounced, second: store.StateSpam} {
		if m, err := node.Get(ctx, id); err != nil || m.State != want {
			t.Errorf("%s after Mailjet's event: %v %v, want %s", id, m.State, err, want)
		}
	}
}

// detail describes a message as Get and Raw show it.
func detail(t *testing.T, s store.Store, id string) string {
	t.Helper()
	ctx := context.Background()
	m, err := s.Get(ctx, id)
	if err != nil {
		t.Fatalf("%T Get(%s): %v", s, id, err)
	}
	raw := []byte(nil)
	if r, _, err := s.Raw(ctx, id); err == nil {
		raw, _ = io.ReadAll(r)
	}
	return fmt.Sprintf("%+v\n%+v\nraw %q %v", *m, m.Timeline, raw, bytes.Contains(raw, []byte("body")) == m.HasRaw)
}

func totals(t *testing.T, s store.Store) map[string]int {
	t.Helper()
	now := time.Now()
	st, err := s.Stats(context.Background(), now.Add(-3*time.Hour), now.Add(time.Hour), 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return st.Totals
}

// tables describes every row of the store's tables but the keys each
// node draws.
func tables(t *testing.T, url string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	out := ""
	for _, q := range []string{
		`SELECT count(*), md5(string_agg(row(m.*)::text, ',' ORDER BY id)) FROM (SELECT id, received_at, updated_at, final_at, state,
			subject, rcpt_to, mailjet_ids, reply, attempts FROM store_messages) m`,
		`SELECT count(*), md5(string_agg(m.id || r.rcpt || r.state || coalesce(r.mj_id, 0), ',' ORDER BY m.id, r.rcpt))
			FROM store_rcpts r JOIN store_messages m USING (key)`,
		`SELECT count(*), md5(string_agg(m.id || e.evkey || e.kind || e.data, ',' ORDER BY m.id, e.seq)) FROM store_events e JOIN store_messages m USING (key)`,
		`SELECT count(*), md5(string_agg(m.id || b.size || md5(b.data), ',' ORDER BY m.id)) FROM store_bodies b JOIN store_messages m USING (key)`,
		`SELECT count(*), md5(string_agg(m.id || s.words::text, ',' ORDER BY m.id)) FROM store_search s JOIN store_messages m USING (key)`,
		`SELECT count(*), md5(string_agg(m.id || a.a, ',' ORDER BY m.id, a.a)) FROM store_addrs a JOIN store_messages m USING (key)`,
		`SELECT count(*), md5(string_agg(row(s.*)::text, ',' ORDER BY minute, kind, class, reason, origin)) FROM store_stats s`,
		`SELECT count(*), md5(string_agg(m.id || f.unsubscribe || f.pending || f.state, ',' ORDER BY m.id)) FROM store_feedback f JOIN store_messages m USING (key)`,
	} {
		var n int
		var sum string
		if err := conn.QueryRow(ctx, q).Scan(&n, &sum); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		out += fmt.Sprintf("%d rows %s\n", n, sum)
	}
	return out
}
