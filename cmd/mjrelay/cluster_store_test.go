package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/relay/feedback"
	"github.com/mjrelay/mjrelay/relay/inspect"
	"github.com/mjrelay/mjrelay/relay/odoo/odootest"
	"github.com/mjrelay/mjrelay/relay/pg/pgtest"
	"github.com/mjrelay/mjrelay/relay/pgfeedback"
)

// TestClusterSharedStoreAndFeedback: in cluster mode the traffic store and
// the Odoo feedback outbox are the cluster's: a message accepted by node 1
// is seen through node 2's API and `mjrelay log`; Mailjet's bounce posted
// to node 2's webhook joins it (seen through node 1) and reaches Odoo
// once; the same bounce posted again to node 1 adds no report; neither
// node keeps an embedded store or outbox in its data_dir.
func TestClusterSharedStoreAndFeedback(t *testing.T) {
	od := odootest.Start("prod", "relay", odooAPIKey)
	defer od.Close()
	old, repl := withOdoo(od)
	url := pgtest.New(t).URL("postgres")
	cw := newClusterWorld(t, url, 2, "10s", old, repl)
	ps := cw.startAll()
	const msgID = "<shared.1700000000.1-openerp-3-res.partner@odoo.test>"
	od.AddMessage(msgID)
	id := sendOdooMail(t, ps[0].addr, "gone@example.org", msgID)

	state := func(node int) string {
		code, body := do(t, http.MethodGet, "http://"+ps[node].web(t)+"/api/messages/"+id)
		if code != http.StatusOK {
			return ""
		}
		var m struct{ State string }
		json.Unmarshal([]byte(body), &m)
		return m.State
	}
	waitUntil(t, "node 2's API to show node 1's message sent", 30*time.Second, func() bool { return state(1) == "sent" })
	if out, code := runCLI(t, "log", "--config", cw.cfgs[1], id); code != 0 || !strings.Contains(out, id) {
		t.Fatalf("mjrelay log on node 2 (exit %d):\n%s", code, out)
	}

	if code := postEvents(t, ps[1].web(t), hardBounce(id, "gone@example.org")); code != http.StatusOK {
		t.Fatalf("node 2's webhook answered %d", code)
	}
	waitUntil(t, "node 1's API to show the bounce node 2 took", 30*time.Second, func() bool { return state(0) == "bounced" })
	waitUntil(t, "the bounce in Odoo", 30*time.Second, func() bool { return len(od.Bounces()) == 1 })

	// Mailjet's resend to the other node: its webhook answers 200 once
	// the outbox has it, so the outbox is final when it does.
	if code := postEvents(t, ps[0].web(t), hardBounce(id, "gone@example.org")); code != http.StatusOK {
		t.Fatalf("node 1's webhook answered %d", code)
	}
	ctx := context.Background()
	ob, err := pgfeedback.New(ctx, pgtest.Pool(t, url, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the report finished in the cluster's outbox", 30*time.Second, func() bool {
		st, err := ob.Stats(ctx)
		return err == nil && st.Pending == 0 && st.Remembered == 1
	})
	if b := od.Bounces(); len(b) != 1 || b[0].Original != msgID {
		t.Fatalf("bounces in Odoo: %+v", b)
	}
	if _, err := ob.Add(ctx, []feedback.Item{{Key: feedback.KeyOf(id, "gone@example.org", feedback.TriggerBounce)}}); err != nil {
		t.Fatal(err)
	}
	if st, _ := ob.Stats(ctx); st.Pending != 0 {
		t.Fatalf("the bounce's key was not the one the nodes used: %+v", st)
	}

	for i := range ps {
		dir := filepath.Join(cw.dir, "node"+string(rune('1'+i)))
		for _, p := range []string{inspect.Path(dir), filepath.Join(dir, "outbox")} {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("node %d keeps %s in cluster mode", i+1, p)
			}
		}
	}
}
