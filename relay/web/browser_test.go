package web

import (
	"bytes"
	"fmt"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mjrelay/mjrelay/relay/store"
	"github.com/mjrelay/mjrelay/relay/store/storetest"
)

// TestBrowser drives the UI in headless Chromium (browserkit_test.go):
// the dashboard and the traffic list, their live updates, the reason
// filter and column, a message with an HTML body (sandboxed: its script
// never runs, its remote image loads only when asked, its inline image
// shows), its headers, text, raw source and attachment download, and
// screenshots of every page at 1400 and 800 px. No page may log an error.
func TestBrowser(t *testing.T) {
	b := startBrowser(t)
	rem := newRemote(t)
	e := newEnv(t, withOptions(func(o *Options) { o.Poll = time.Second }))
	richID, rich := e.addRich(t, t0.Add(time.Minute), rem.URL+"/pixel.gif", rem.URL+"/ran", "4XqZ9k1aB2")
	ts := httptest.NewServer(e.h)
	defer ts.Close()
	refusedID := e.ids(t, store.Filter{State: "refused"})[0]

	t.Run("dashboard", func(t *testing.T) {
		b := b.with(t)
		b.shotWidths(ts.URL+"/", "dashboard", `document.querySelectorAll("figure.chart polyline").length >= 8`)
		b.open(ts.URL+"/", 1400)
		if n := b.eval(`document.querySelectorAll("section.cards .card").length`); n.(float64) < 8 {
			t.Errorf("%v cards", n)
		}
		if w := b.str(`document.querySelector(".windows a[aria-current]").textContent`); w != "1h" {
			t.Errorf("default window %s, want 1h", w)
		}
		// A refusal arrives: the card counts it without a reload.
		b.eval(`window.mark = "same page"`)
		card := `document.querySelector('.card[href*="state=refused"] .n').textContent`
		before := b.str(card)
		e.record(t, storetest.Refused(t0.Add(40*time.Minute), "rcpt", "relay_denied", "550 5.7.1 Relaying denied",
			"x@acme.example", []string{"y@elsewhere.example"}))
		b.poll(card + ` !== "` + before + `"`)
		if m := b.str(`window.mark`); m != "same page" {
			t.Error("the dashboard reloaded")
		}
	})

	t.Run("traffic", func(t *testing.T) {
		b := b.with(t)
		b.shotWidths(ts.URL+"/messages", "traffic", `document.querySelectorAll("#rows tr").length >= 7`)
		b.open(ts.URL+"/messages", 1400)
		row := `document.querySelector('#rows tr[data-id="` + refusedID + `"]')`
		why, from := b.str(row+`.querySelector("td.why").textContent`), b.str(row+`.querySelector("td.from").textContent`)
		if !strings.Contains(why, "data: sender_not_found") || !strings.Contains(why, "550 5.7.1 Sender spoof@evil.example is not a verified sender") {
			t.Errorf("refused row's reason %q", why)
		}
		if !strings.Contains(from, "spoof@evil.example") || !strings.Contains(from, "login odoo") {
			t.Errorf("refused row's sender %q", from)
		}
		if n := b.str(`document.querySelectorAll('#rows tr[data-id="` + richID + `"] svg.clip').length`); n != "1" {
			t.Errorf("the message with a PDF has %s attachment markers", n)
		}
		if s := b.str(`document.querySelector("#rows time").textContent`); !timeRe.MatchString(s) {
			t.Errorf("time written %q", s)
		}

		// At 800 px, To and Subject stay on screen.
		b.open(ts.URL+"/messages", 800)
		for _, cell := range []string{"td.to", "td.subj a"} {
			box := `document.querySelector('#rows tr[data-id="` + richID + `"] ` + cell + `').getBoundingClientRect()`
			if ok := b.eval(box + `.width > 40 && ` + box + `.right <= window.innerWidth`); ok != true {
				t.Errorf("%s is not visible at 800 px: %v", cell, b.eval(`JSON.stringify(`+box+`)`))
			}
		}

		// Filter by reason: a choice in the list filters at once (the page
		// submits the form on its change event, which SetValue fires); a
		// click on the button as well would be a second navigation racing
		// the first.
		b.open(ts.URL+"/messages", 1400)
		navigateTo(b, chromedp.SetValue(chromedp.CSS(`#filters select[name="reason"]`), "550 5.1.1"), "reason=")
		ids := b.str(`Array.from(document.querySelectorAll("#rows tr")).map(r => r.dataset.id).join(" ")`)
		if ids != e.smp.IDs["failed"] || !strings.Contains(b.str(`location.search`), "reason=550+5.1.1") {
			t.Errorf("rows %q for reason 550 5.1.1 (%s), want %s", ids, b.str(`location.search`), e.smp.IDs["failed"])
		}

		// Search by the upstream's "queued as" id.
		b.do(chromedp.SendKeys(chromedp.CSS(`header input[name="q"]`), "4XqZ9k1aB2"))
		b.submit("header form.quick", "q=4XqZ9k1aB2")
		if ids := b.str(`Array.from(document.querySelectorAll("#rows tr")).map(r => r.dataset.id).join(" ")`); ids != richID {
			t.Errorf("upstream id search (%s): %q", b.str(`location.href`), ids)
		}

		// A new message appears in the open list, filters kept, no reload.
		b.open(ts.URL+"/messages?class=transactional", 1400)
		b.eval(`window.mark = "same page"`)
		at := t0.Add(30 * time.Minute)
		id := storetest.QueueID(at, 777)
		e.record(t, storetest.NewFlow(at, id, "sales@acme.example", []string{"new@client.example"}, "Just arrived").Received(nil).Events()...)
		b.poll(`document.querySelector('#rows tr[data-id="` + id + `"]') !== null`)
		if b.str(`window.mark`) != "same page" || b.str(`document.querySelector("#rows tr").dataset.id`) != id ||
			b.str(`document.querySelector('#rows tr[data-id="`+id+`"]').classList.contains("new")`) != "true" {
			t.Error("the new message is not the first, marked new, row of the same page")
		}
		if b.str(`location.search`) != "?class=transactional" {
			t.Errorf("filters lost: %s", b.str(`location.search`))
		}
	})

	t.Run("message", func(t *testing.T) {
		b := b.with(t)
		page := ts.URL + "/messages/" + richID
		body := "/messages/" + richID + "/body"
		for _, w := range []int64{800, 1400} {
			b.open(page, w)
			b.inFrame(body, `document.readyState`) // its frame loaded
			b.shotAt(fmt.Sprintf("message-body-%d", w), "#content")
			b.shot(fmt.Sprintf("message-%d", w))
		}
		sandbox := b.str(`document.getElementById("body-frame").getAttribute("sandbox")`)
		if sandbox != "allow-popups allow-popups-to-escape-sandbox" {
			t.Errorf("iframe sandbox=%q", sandbox)
		}
		probe := b.inFrame(body, `document.getElementById("probe").textContent`)
		logo := b.inFrame(body, `document.getElementById("logo").complete + " " + document.getElementById("logo").naturalWidth`)
		remoteImg := b.inFrame(body, `document.getElementById("remote").complete + " " + document.getElementById("remote").naturalWidth`)
		if probe != rich.Probe {
			t.Errorf("the body's script ran: #probe says %q", probe)
		}
		if logo != "true 4" {
			t.Errorf("inline (cid:) image: complete, width = %s; want it shown", logo)
		}
		if remoteImg != "true 0" {
			t.Errorf("remote image: complete, width = %s; want it blocked", remoteImg)
		}
		if hits := rem.requests(); len(hits) != 0 {
			t.Errorf("the remote server was asked for %v before images were allowed", hits)
		}
		if subj := b.str(`document.querySelector("h1").textContent`); subj != rich.Subject {
			t.Errorf("title %q, want the decoded subject %q", subj, rich.Subject)
		}

		// The attachment downloads, byte for byte.
		link := `#attachments a[href$="/attachments/` + rich.PDFPart + `"]`
		if name := b.str(`document.querySelector('` + link + `').textContent`); !strings.Contains(name, rich.PDFName) {
			t.Errorf("attachment listed as %q", name)
		}
		if got := b.download(link); !bytes.Equal(got, rich.PDF) {
			t.Errorf("downloaded %d bytes, want the PDF's %d", len(got), len(rich.PDF))
		}

		// Remote images, when asked: loaded; the script still does not run.
		b.follow("#remote-toggle", "images=remote")
		b.poll(`document.getElementById("body-frame").src.includes("images=remote")`)
		if got := b.inFrame(body+"?images=remote", `document.getElementById("remote").naturalWidth + " " + document.getElementById("probe").textContent`); got != "1 "+rich.Probe {
			t.Errorf("with remote images: width, probe = %q", got)
		}
		b.shotAt("message-body-remote-1400", "#content")
		if hits := rem.requests(); !slices.Contains(hits, "/pixel.gif") || slices.Contains(hits, "/ran") {
			t.Errorf("remote requests %v: want the image, never the script's beacon", hits)
		}

		b.follow(`nav.tabs a[data-view="headers"]`, "view=headers")
		headers := b.str(`Array.from(document.querySelectorAll("#headers tbody tr")).map(r => r.cells[0].textContent + ": " + r.cells[1].textContent).join("\n")`)
		for _, want := range []string{"Subject: " + rich.Subject, "From: " + rich.FromName + " <invoices@acme.example>", "MIME-Version: 1.0"} {
			if !strings.Contains(headers, want) {
				t.Errorf("header table lacks %q:\n%s", want, headers)
			}
		}
		b.shot("message-headers-1400")

		b.follow(`nav.tabs a[data-view="text"]`, "view=text")
		if text := b.str(`document.getElementById("text-part").textContent`); text != rich.Text {
			t.Errorf("text part %q, want %q", text, rich.Text)
		}

		b.follow(`nav.tabs a[data-view="raw"]`, "view=raw")
		raw := b.str(`document.getElementById("raw-source").textContent`)
		if !strings.Contains(raw, "Content-Type: multipart/mixed") || !strings.Contains(raw, "Content-Transfer-Encoding: base64") {
			t.Errorf("raw source: %.200q", raw)
		}
		if b.str(`document.getElementById("probe") === null && document.querySelectorAll("script").length === 1`) != "true" {
			t.Error("the raw source put the message's markup in the page")
		}
		b.shot("message-raw-1400")
	})

	t.Run("other pages", func(t *testing.T) {
		b := b.with(t)
		b.shotWidths(ts.URL+"/queue", "queue", `document.getElementById("queue") !== null`)
		b.shotWidths(ts.URL+"/senders", "senders", `document.getElementById("senders") !== null`)
		b.shotWidths(ts.URL+"/funnel?tz=60", "funnel", `document.getElementById("funnel") !== null`)
		if rate := b.str(`document.querySelector("#funnel tfoot td.rate").textContent`); rate != "33.3 %" {
			t.Errorf("funnel bounce rate %q (1 bounce of 3 accepted)", rate)
		}
		b.shotWidths(ts.URL+"/messages/"+refusedID, "message-refused", `document.getElementById("not-kept") !== null`)
	})

	t.Run("sandbox mode", func(t *testing.T) {
		b := b.with(t)
		se := newEnv(t, withOptions(func(o *Options) { o.Sandbox = true }))
		sts := httptest.NewServer(se.h)
		defer sts.Close()
		b.shotWidths(sts.URL+"/", "dashboard-sandbox", `document.querySelectorAll("figure.chart").length >= 3`)
		labels := b.str(`document.body.textContent`)
		for _, bad := range []string{"accepted by Mailjet", "latency"} {
			if strings.Contains(strings.ToLower(labels), strings.ToLower(bad)) {
				t.Errorf("the sandbox dashboard says %q", bad)
			}
		}
	})
}

// timeRe is how the UI writes times.
var timeRe = regexp.MustCompile(`^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$`)
