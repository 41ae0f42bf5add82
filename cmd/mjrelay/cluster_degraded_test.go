package main

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/relay/pg"
	"github.com/mjrelay/mjrelay/relay/pg/pgtest"
)

// TestClusterStartWithoutPostgres: a cluster node starts while PostgreSQL
// is down (both rebooted, the node restarted by systemd during an
// outage). It listens and takes Odoo's mail into its local spool (0
// refused), delivers what it can meanwhile, and /readyz and the metrics
// say degraded; `mjrelay restart` succeeds meanwhile. Once PostgreSQL is
// back the node joins the cluster (it creates the schema then: the
// database was empty), and the mail still held locally is moved into the
// cluster's queue and delivered from there: each message once. The
// sender check is on (Mailjet's API answers): the parts of the node that
// keep their state in the database (the account snapshot, the traffic
// store) wait for it too.
func TestClusterStartWithoutPostgres(t *testing.T) {
	db := pgtest.New(t)
	api := mjtest.NewAPI(apiKey, secretKey)
	defer api.Close()
	api.AddSender("*@example.com", "Active", "transactional")
	cw := newClusterWorld(t, db.URL("postgres"), 1, "60s", `sender_check = "off"`, `sender_check = "enforce"`,
		`timeout = "5s"`, fmt.Sprintf("timeout = \"5s\"\napi_url = %q", api.URL()))
	if err := db.Stop(); err != nil {
		t.Fatal(err)
	}
	p := startRelay(t, binary, []string{"serve", "--config", cw.cfgs[0]}, nil, nil)
	smtpAddr, web := p.addr("SMTP listening"), "http://"+p.addr("HTTP listening")
	acked := map[string]bool{}
	send := func(token string) {
		t.Helper()
		c := dial(t, smtpAddr)
		defer c.Quit()
		if err := sendToken(c, token); err != nil {
			t.Fatalf("%s with PostgreSQL stopped: %v", token, err)
		}
		acked[token] = true
	}
	degraded := func(held int) {
		t.Helper()
		code, body := do(t, http.MethodGet, web+"/readyz")
		if code != http.StatusOK || !strings.Contains(body, "degraded") {
			t.Errorf("/readyz: %d %s, want 200 and degraded", code, body)
		}
		waitUntil(t, fmt.Sprintf("the metrics to show degraded, %d held locally", held), 20*time.Second, func() bool {
			_, m := do(t, http.MethodGet, web+"/metrics")
			return metricValue(m, "mjrelay_cluster_degraded") == 1 && int(metricValue(m, "mjrelay_cluster_held_locally")) == held
		})
	}

	// Delivered at once, from the local spool.
	for i := range 3 {
		send(fmt.Sprintf("early-%d", i))
	}
	if dups := waitAllDelivered(t, cw.world, acked); dups != 0 {
		t.Errorf("%d duplicates delivered from the local spool", dups)
	}
	degraded(0)

	// Mailjet answers 451 for a while: Odoo's mail stays in the spool.
	cw.up.SetMailFault(mjtest.Fault{Code: 451, Enh: smtp.EnhancedCode{4, 3, 0}, Message: "later"})
	load := startClusterLoad(t, smtpAddr, "deg", 3, "")
	ok, errs := load.wait(t)
	if len(errs) > 0 {
		t.Errorf("%d sends failed (want 0 refused): %v", len(errs), errs[:min(len(errs), 5)])
	}
	if len(ok) == 0 {
		t.Fatal("no mail acknowledged by the Odoo replay")
	}
	for _, tok := range ok {
		acked[tok] = true
	}
	held := len(ok)
	degraded(held)

	// A restart while the database is still away succeeds; the new
	// process takes the local spool over, still degraded.
	old := p.main()
	if out, err := exec.Command(binary, "restart", "--config", cw.cfgs[0]).CombinedOutput(); err != nil {
		t.Fatalf("mjrelay restart with PostgreSQL stopped: %v\n%s", err, out)
	}
	p.waitFor("the former process to exit", 2*time.Minute, func() bool { return exited(old) })
	send("after-restart")
	held++
	degraded(held)

	if err := db.Start(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the degraded state to clear and the local spool to empty", 30*time.Second, func() bool {
		_, m := do(t, http.MethodGet, web+"/metrics")
		_, body := do(t, http.MethodGet, web+"/readyz")
		return metricValue(m, "mjrelay_cluster_degraded") == 0 && metricValue(m, "mjrelay_cluster_held_locally") == 0 &&
			!strings.Contains(body, "degraded")
	})
	// Mailjet still answers 451: the held mail is in the cluster's queue.
	ctx := context.Background()
	pool, err := pg.Open(ctx, pg.Options{URL: db.URL("postgres")})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	counts := func() (queued, done int) {
		t.Helper()
		if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM mjrelay_queue), (SELECT count(*) FROM mjrelay_queue_done)`).Scan(&queued, &done); err != nil {
			t.Fatal(err)
		}
		return queued, done
	}
	if queued, done := counts(); queued != held || done != 0 {
		t.Errorf("the cluster's queue: %d queued and %d done, want the %d messages held locally and 0", queued, done, held)
	}
	cw.up.SetMailFault(mjtest.Fault{})
	waitAllDelivered(t, cw.world, acked)
	// Once the cluster's queue is empty nothing can go out again: count.
	waitUntil(t, "the cluster's queue to empty", 30*time.Second, func() bool { q, _ := counts(); return q == 0 })
	if _, done := counts(); done != held {
		t.Errorf("%d messages done in the cluster's queue, want the %d held locally", done, held)
	}
	for tok, n := range tokensAt(cw.up) {
		if n != 1 || !acked[tok] {
			t.Errorf("%s delivered %d times (acknowledged: %v)", tok, n, acked[tok])
		}
	}
	t.Logf("%d acknowledged with PostgreSQL stopped (0 refused), %d of them held locally and moved in, all delivered once", len(acked), held)
}
