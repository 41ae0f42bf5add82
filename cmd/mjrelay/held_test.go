package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/relay/store"
)

// TestHeldMailAcrossRestart: mail accepted and held while the Mailjet
// account state is unknown (the REST API down since the first start) stays
// held across a restart: the new process has it held (`mjrelay queue list`,
// answered by it, says so), and holds the mail it accepts too. Once the
// API answers, the new process checks them all: the verified sender's are
// delivered once, the unverified one's fails with the reply its client
// would have had.
func TestHeldMailAcrossRestart(t *testing.T) {
	api := mjtest.NewAPI(apiKey, secretKey)
	defer api.Close()
	api.AddSender("*@example.com", "Active", "transactional")
	api.SetDown(true)
	w := newWorld(t, `sender_check = "off"`, `sender_check = "enforce"`,
		`timeout = "5s"`, fmt.Sprintf("timeout = \"5s\"\napi_url = %q", api.URL()))
	p := startRelay(t, binary, []string{"serve", "--config", w.cfgPath}, nil, nil)
	addr := p.addr("SMTP listening")

	c := dial(t, addr)
	if err := sendToken(c, "held-0"); err != nil {
		t.Fatalf("verified sender with the API down: %v", err)
	}
	if err := sendFrom(c, "stranger@example.net", "stranger@example.net", "held-stranger"); err != nil {
		t.Fatalf("unverified sender with the API down: %v", err)
	}
	c.Quit()
	first := p.main()
	if p.restart(0) == first {
		t.Fatal("no new process")
	}
	out, code := runCLI(t, "queue", "--config", w.cfgPath, "list")
	if code != 0 || strings.Count(out, " held  Sender not checked yet: the Mailjet account state is not known") != 2 {
		t.Fatalf("queue list after the restart (exit %d):\n%s", code, out)
	}
	c = dial(t, addr)
	if err := sendToken(c, "held-1"); err != nil {
		t.Fatalf("verified sender to the new process with the API down: %v", err)
	}
	c.Quit()
	if n := len(w.up.Received()); n != 0 {
		t.Fatalf("%d held messages went upstream", n)
	}

	api.SetDown(false)
	if dups := waitAllDelivered(t, w, map[string]bool{"held-0": true, "held-1": true}); dups != 0 {
		t.Errorf("%d duplicates", dups)
	}
	var failed store.Summary
	waitUntil(t, "the unverified sender's mail failed", 60*time.Second, func() bool {
		failed = storedMessages(t, filepath.Join(w.dir, "data"))["held-stranger"]
		return failed.State == store.StateFailed
	})
	// With the same text the SMTP reply carries now that the state is known.
	c = dial(t, addr)
	defer c.Quit()
	err := sendFrom(c, "stranger@example.net", "stranger@example.net", "refused-now")
	if !strings.Contains(failed.Reason, "stranger@example.net refused") || err == nil || !strings.Contains(err.Error(), failed.Reason) {
		t.Errorf("the held mail failed with %q; the reply now: %v", failed.Reason, err)
	}
	if got := tokensAt(w.up)["held-stranger"]; got != 0 {
		t.Errorf("the unverified sender's mail went upstream %d times", got)
	}
}
