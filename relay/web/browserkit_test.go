package web

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// chromiumPath is the Debian package's binary (apt-get install chromium).
const chromiumPath = "/usr/bin/chromium"

// browser is headless Chromium driven by a test: it fails the test on
// any error a page logs (a CSP violation would) and takes screenshots.
type browser struct {
	t     *testing.T
	ctx   context.Context
	shots string // where screenshots go
	log   *problems
}

// problems are the errors pages logged.
type problems struct {
	mu   sync.Mutex
	list []string
}

// with is the browser for a subtest.
func (b *browser) with(t *testing.T) *browser { c := *b; c.t = t; return &c }

// startBrowser starts Chromium (the test is skipped without it, except in
// CI). Screenshots go to $MJRELAY_ARTIFACTS/screenshots, or a temporary
// directory (logged).
func startBrowser(t *testing.T) *browser {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI needs Chromium for the browser test (apt-get install -y chromium): %v", err)
		}
		t.Skipf("no Chromium at %s (apt-get install -y chromium)", chromiumPath)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1400, 900),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	t.Cleanup(cancelCtx)
	// A guard against a hung browser, not a performance assertion.
	ctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(cancel)
	b := &browser{t: t, ctx: ctx, log: &problems{}}
	if dir := os.Getenv("MJRELAY_ARTIFACTS"); dir != "" {
		b.shots = filepath.Join(dir, "screenshots")
	} else {
		b.shots = t.TempDir()
	}
	if err := os.MkdirAll(b.shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", b.shots)

	// Errors the pages log and uncaught exceptions.
	cctx, stop := context.WithCancel(ctx)
	console := chromedp.Console(cctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range console {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError {
				b.log.mu.Lock()
				b.log.list = append(b.log.list, m.String())
				b.log.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		stop()
		<-done
		b.log.mu.Lock()
		defer b.log.mu.Unlock()
		for _, p := range b.log.list {
			t.Errorf("browser: %s", p)
		}
	})
	return b
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) eval(expr string) any {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[any](expr))
	if err != nil {
		b.t.Fatalf("%s: %v", expr, err)
	}
	return v
}

func (b *browser) str(expr string) string {
	b.t.Helper()
	return fmt.Sprint(b.eval(expr))
}

// navigate runs an action that leads to another page and waits for it.
func (b *browser) navigate(trigger chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.WaitEvent(cdppage.LoadEventFired, nil, trigger)); err != nil {
		b.t.Fatal(err)
	}
}

// follow clicks the element sel (a link, a form's button) and waits for
// the page it leads to, whose URL holds part. The click is the element's
// own (HTMLElement.click, after the evaluation returns): a click sent as
// mouse events can be sent again by chromedp on the next page when the
// navigation interrupts it, submitting a form twice.
func (b *browser) follow(sel, part string) {
	b.t.Helper()
	js := `setTimeout(() => document.querySelector(` + strconv.Quote(sel) + `).click(), 0); true`
	navigateTo(b, chromedp.Evaluate[bool](js), part)
}

// submit submits the form sel (as pressing Enter in it does) and waits for
// the page it leads to.
func (b *browser) submit(sel, part string) {
	b.t.Helper()
	js := `setTimeout(() => document.querySelector(` + strconv.Quote(sel) + `).requestSubmit(), 0); true`
	navigateTo(b, chromedp.Evaluate[bool](js), part)
}

// navigateTo runs an action that leads to a page whose URL holds part,
// and waits until that page is loaded.
func navigateTo[T any](b *browser, trigger chromedp.Action[T], part string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.WaitEvent(cdppage.LoadEventFired, nil, trigger)); err != nil {
		b.t.Fatal(err)
	}
	expr := `location.href.includes(` + strconv.Quote(part) + `) && document.readyState === "complete"`
	var err error
	for range 20 { // a poll the navigation interrupts is asked again
		if _, err = chromedp.Run(b.ctx, chromedp.Poll[bool](expr)); err == nil {
			return
		}
	}
	b.t.Fatalf("waiting for a page at …%s: %v", part, err)
}

// open loads a page in a window of a width. The window is resized rather
// than the viewport emulated: Chromium paints frames of other processes
// (the message's sandboxed body) in screenshots of the window's own size
// only.
func (b *browser) open(url string, width int64) {
	b.t.Helper()
	win, err := chromedp.Call(b.ctx, cdpbrowser.GetWindowForTarget, cdpbrowser.GetWindowForTargetParams{})
	if err == nil {
		_, err = chromedp.Call(b.ctx, cdpbrowser.SetWindowBounds, cdpbrowser.SetWindowBoundsParams{WindowID: win.WindowID,
			Bounds: &cdpbrowser.Bounds{Width: width, Height: 900}})
	}
	if err != nil {
		b.t.Fatal(err)
	}
	b.navigate(chromedp.Navigate(url))
	if w := b.eval(`window.innerWidth`); w != float64(width) {
		b.t.Fatalf("window %d px wide, want %d", int(w.(float64)), width)
	}
}

// poll waits until expr is true.
func (b *browser) poll(expr string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[bool](expr)); err != nil {
		b.t.Fatalf("waiting for %s: %v", expr, err)
	}
}

// shot saves a screenshot of the whole page at its current width.
func (b *browser) shot(name string) {
	b.t.Helper()
	buf, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err == nil {
		err = os.WriteFile(filepath.Join(b.shots, name+".png"), buf, 0o644)
	}
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
	}
}

// shotAt saves a screenshot of the viewport scrolled to sel: Chromium
// paints frames of other processes (the message's sandboxed body) in
// captures of the viewport only.
func (b *browser) shotAt(name, sel string) {
	b.t.Helper()
	b.eval(`document.querySelector(` + strconv.Quote(sel) + `).scrollIntoView(); true`)
	buf, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err == nil {
		err = os.WriteFile(filepath.Join(b.shots, name+".png"), buf, 0o644)
	}
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
	}
}

// shotWidths loads a page at each width and saves a screenshot of it.
func (b *browser) shotWidths(url, name string, ready string) {
	b.t.Helper()
	for _, w := range []int64{1400, 800} {
		b.open(url, w)
		b.poll(ready)
		b.shot(fmt.Sprintf("%s-%d", name, w))
	}
}

// inFrame evaluates expr in the document of the frame loaded from a URL
// ending in suffix. Chromium runs sandboxed frames in a process of their
// own: the test attaches to it, as DevTools does; scripts of the page
// itself cannot reach it.
func (b *browser) inFrame(suffix, expr string) string {
	b.t.Helper()
	var id string
	for range 100 {
		infos, err := chromedp.Targets(b.ctx)
		if err != nil {
			b.t.Fatal(err)
		}
		i := slices.IndexFunc(infos, func(in *target.Info) bool { return in.Type == "iframe" && strings.HasSuffix(in.URL, suffix) })
		if i >= 0 {
			id = string(infos[i].TargetID)
			break
		}
		time.Sleep(50 * time.Millisecond) // the frame's target is being created
	}
	if id == "" {
		b.t.Fatalf("no frame loaded from …%s", suffix)
	}
	fctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithTargetID(target.ID(id)), chromedp.WithDetachOnCancel())
	defer cancel()
	if _, err := chromedp.Run(fctx, chromedp.Poll[bool](`document.readyState === "complete"`)); err != nil {
		b.t.Fatalf("frame %s: %v", suffix, err)
	}
	v, err := chromedp.Run(fctx, chromedp.Evaluate[any](expr))
	if err != nil {
		b.t.Fatalf("in frame %s: %s: %v", suffix, expr, err)
	}
	return fmt.Sprint(v)
}

// download clicks a link and returns the file the browser saved.
func (b *browser) download(sel string) []byte {
	b.t.Helper()
	dir := b.t.TempDir()
	yes := true
	if _, err := chromedp.CallBrowser(b.ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: &yes}); err != nil {
		b.t.Fatal(err)
	}
	ectx, stop := context.WithCancel(b.ctx)
	defer stop()
	events := chromedp.BrowserEvents(ectx, cdpbrowser.DownloadProgress)
	got := make(chan string, 1)
	go func() {
		for ev, err := range events {
			if err != nil {
				return
			}
			if ev.State == cdpbrowser.DownloadProgressStateCompleted {
				got <- filepath.Join(dir, ev.GUID)
				return
			}
		}
	}()
	b.do(chromedp.Click(chromedp.CSS(sel)))
	select {
	case path := <-got:
		data, err := os.ReadFile(path)
		if err != nil {
			b.t.Fatal(err)
		}
		return data
	case <-b.ctx.Done():
		b.t.Fatal("the download did not complete")
	}
	return nil
}

// remote is a web server outside the relay that counts what it is asked.
type remote struct {
	*httptest.Server
	mu   sync.Mutex
	hits []string
}

func newRemote(t *testing.T) *remote {
	r := &remote{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.hits = append(r.hits, req.URL.Path)
		r.mu.Unlock()
		w.Header().Set("Content-Type", "image/gif")
		w.Write([]byte("GIF89a\x01\x00\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x00;"))
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *remote) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.hits)
}
