package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/relay/pg/pgtest"
)

// TestMigrateToCluster: an embedded node's queue (with retry states) and
// traffic history are moved into the cluster's database by `mjrelay
// migrate --to-cluster`;
// a second run moves nothing; the node then runs in cluster mode and
// delivers each message once.
func TestMigrateToCluster(t *testing.T) {
	w := newWorld(t)
	w.up.SetMailFault(mjtest.Fault{Code: 451, Enh: smtp.EnhancedCode{4, 3, 0}, Message: "later"})
	p := w.serve()
	c := dial(t, p.addr)
	for i := range 5 {
		if err := sendToken(c, fmt.Sprintf("mig-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	c.Quit()
	waitUntil(t, "the five messages deferred", 10*time.Second, func() bool {
		out, _ := runCLI(t, "queue", "--config", w.cfgPath, "list")
		return deferredIn(out) == 5
	})
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.exited

	cfg, _ := os.ReadFile(w.cfgPath)
	url := pgtest.New(t).URL("postgres")
	cfg = append(cfg, fmt.Sprintf("[cluster]\npostgres_url = %q\nnode_name = \"migrated\"\nlease = \"3s\"\n", url)...)
	os.WriteFile(w.cfgPath, cfg, 0o600)
	for run, want := range []string{"5 message(s) moved into the cluster, 0 already there", "0 message(s) moved into the cluster, 0 already there"} {
		out, code := runCLI(t, "migrate", "--config", w.cfgPath, "--to-cluster")
		if !strings.Contains(out, "queue: "+want) {
			t.Fatalf("migrate run %d (exit %d): %s", run+1, code, out)
		}
		if code != 0 {
			t.Fatalf("migrate run %d failed: %s", run+1, out)
		}
	}
	// The traffic history is the cluster's too.
	if out, code := runCLI(t, "log", "--config", w.cfgPath); code != 0 || strings.Count(out, "mig-") != 5 {
		t.Fatalf("the cluster's traffic store after the migration (exit %d):\n%s", code, out)
	}
	out, code := runCLI(t, "queue", "--config", w.cfgPath, "list")
	if code != 0 || deferredIn(out) != 5 {
		t.Fatalf("the cluster's queue after the migration (exit %d):\n%s", code, out)
	}
	w.up.SetMailFault(mjtest.Fault{})
	w.serve()
	waitUntil(t, "the five migrated messages upstream", 30*time.Second, func() bool { return len(tokensAt(w.up)) == 5 })
	time.Sleep(time.Second)
	for tok, n := range tokensAt(w.up) {
		if n != 1 {
			t.Errorf("%s delivered %d times", tok, n)
		}
	}
}

// deferredIn counts the deferred messages in `mjrelay queue list`'s output.
func deferredIn(list string) int {
	return strings.Count(list, "451 4.3.0 later") + strings.Count(list, "cooling down")
}
