package web

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// chromiumPath is the Debian package's binary (apt-get install chromium).
const chromiumPath = "/usr/bin/chromium"

// TestBrowser drives the UI in headless Chromium: the dashboard draws its
// charts, the traffic list filters, a message shows its timeline, and no
// page logs an error (a CSP violation would). Set MJRELAY_SCREENSHOTS to a
// directory to keep screenshots of the pages.
func TestBrowser(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI needs Chromium for the browser test (apt-get install -y chromium): %v", err)
		}
		t.Skipf("no Chromium at %s (apt-get install -y chromium)", chromiumPath)
	}
	e := newEnv(t)
	ts := httptest.NewServer(e.h)
	defer ts.Close()

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1366, 900),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(alloc)
	defer cancelCtx()
	// A guard against a hung browser, not a performance assertion.
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()

	// Errors the pages log (a CSP violation would) and uncaught exceptions.
	var mu sync.Mutex
	var problems []string
	cctx, stopConsole := context.WithCancel(ctx)
	console := chromedp.Console(cctx)
	consoleDone := make(chan struct{})
	go func() {
		defer close(consoleDone)
		for m, err := range console {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError {
				mu.Lock()
				problems = append(problems, m.String())
				mu.Unlock()
			}
		}
	}()
	shots := os.Getenv("MJRELAY_SCREENSHOTS")
	shot := func(name string) {
		if shots == "" {
			return
		}
		buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err == nil {
			err = os.WriteFile(filepath.Join(shots, name+".png"), buf, 0o644)
		}
		if err != nil {
			t.Log("screenshot:", err)
		}
	}
	do := func(steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatal(err)
		}
	}
	eval := func(expr string) any {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[any](expr))
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		return v
	}
	// navigate runs an action that leads to another page and waits for it.
	navigate := func(trigger chromedp.Action[chromedp.Void]) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.WaitEvent(cdppage.LoadEventFired, nil, trigger)); err != nil {
			t.Fatal(err)
		}
	}
	poll := func(expr string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr)); err != nil {
			t.Fatalf("waiting for %s: %v", expr, err)
		}
	}

	// The dashboard draws its charts.
	do(chromedp.Navigate(ts.URL+"/?window=24h"), chromedp.WaitVisible(chromedp.CSS("figure.chart svg")))
	polylines := eval(`document.querySelectorAll("figure.chart polyline").length`)
	cards := eval(`document.querySelectorAll("section.cards .card").length`)
	shot("dashboard")

	// The traffic list filters.
	navigate(chromedp.Click(chromedp.CSS(`header.top nav a[href="/messages"]`)))
	do(chromedp.WaitVisible(chromedp.ID("filters")))
	poll(`document.querySelectorAll("#traffic tbody tr").length === 6`)
	do(chromedp.SendKeys(chromedp.CSS(`#filters input[name="to"]`), "mr.x@client.example"))
	navigate(chromedp.Click(chromedp.CSS(`#filters button[type="submit"]`)))
	do(chromedp.WaitVisible(chromedp.ID("traffic")))
	search := eval(`location.search`)
	rows := eval(`document.querySelectorAll("#traffic tbody tr").length`)
	firstSubject := eval(`document.querySelector("#traffic tbody tr a.subject").textContent`)
	shot("traffic")

	// A message shows its timeline.
	navigate(chromedp.Click(chromedp.CSS(`#traffic tbody tr a.subject`)))
	poll(`location.pathname.startsWith("/messages/")`)
	do(chromedp.WaitVisible(chromedp.ID("timeline")))
	state := eval(`document.getElementById("state").textContent`)
	kindsAny := eval(`Array.from(document.querySelectorAll("#timeline li")).map(li => li.dataset.kind).join(" ")`)
	shot("message")

	do(chromedp.Navigate(ts.URL+"/queue"), chromedp.WaitVisible(chromedp.ID("queue")))
	shot("queue")
	do(chromedp.Navigate(ts.URL+"/senders"), chromedp.WaitVisible(chromedp.CSS("h1")))
	shot("senders")
	stopConsole()
	<-consoleDone

	kinds := strings.Fields(fmt.Sprint(kindsAny))
	if polylines.(float64) < 8 || cards.(float64) < 6 {
		t.Errorf("dashboard: %d chart lines, %d cards", polylines, cards)
	}
	if rows.(float64) != 1 || firstSubject != "Invoice INV/2026/0042" {
		t.Errorf("filtered list: %d rows, first %q; want the invoice only", rows, firstSubject)
	}
	if s := search.(string); strings.Contains(s, "q=") || !strings.Contains(s, "tz=") {
		t.Errorf("filter URL %q: empty fields should be left out and tz set by the script", search)
	}
	if state != "delivered" {
		t.Errorf("message state %q, want delivered", state)
	}
	if want := []string{"received", "policy", "attempt", "delivered", "mailjet:sent"}; !slices.Equal(kinds, want) {
		t.Errorf("timeline %v, want %v", kinds, want)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Errorf("browser: %s", p)
	}
}
