package web

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/mjrelay/mjrelay/relay/store"
)

// funnelData is the delivery funnel page.
type funnelData struct {
	Days     int
	DaysOpts []int
	Lane     string // "" for all lanes
	Lanes    []string
	TZ       string // the tz parameter, kept in the page's links
	Zone     string // the days' time zone, for people
	Rows     []funnelRow
	Total    store.FunnelCounts
	TotalRow funnelRow
	ByLane   []funnelRow
	Chart    funnelChart
	Sandbox  bool
	// ShowSandboxed: the sandboxed column is shown.
	ShowSandboxed bool
	// NoWebhook: Mailjet's events do not come in, so their columns stay
	// empty.
	NoWebhook bool
}

// funnelRow is a day's or a lane's counts.
type funnelRow struct {
	Label   string
	Day     time.Time
	C       store.FunnelCounts
	Sandbox bool // the sandboxed column is shown
}

// funnelChart draws the days as bars: what was received, and over it what
// Mailjet accepted, split by what its events said.
type funnelChart struct {
	W, H   int
	Bars   []funnelBar
	YTicks []tick
	Empty  bool
	X0, X1 float64
	Y0, Y1 float64
	CX, CY float64
}

type funnelBar struct {
	Label    string
	X, W     float64 // the received bar
	Received rect
	Segs     []rect
}

type rect struct {
	X, Y, W, H float64
	Class      string
	Title      string
}

var funnelDayOpts = []int{7, 14, 30}

func (s *Server) funnelPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d := funnelData{Days: 7, DaysOpts: funnelDayOpts, Lane: q.Get("lane"), Lanes: []string{"transactional", "bulk"},
		TZ: q.Get("tz"), Sandbox: s.o.Sandbox, NoWebhook: s.o.Webhook.Username == ""}
	if n, err := strconv.Atoi(q.Get("days")); err == nil && slices.Contains(funnelDayOpts, n) {
		d.Days = n
	}
	if !slices.Contains(d.Lanes, d.Lane) {
		d.Lane = ""
	}
	loc, err := parseTZ(d.TZ)
	if err != nil {
		loc, d.TZ = time.UTC, ""
	}
	d.Zone = loc.String()
	now := s.d.Now()
	f, err := s.d.Store.Funnel(r.Context(), now.AddDate(0, 0, -(d.Days-1)), now, loc)
	if err != nil {
		s.log.Error("funnel failed", "err", err)
		s.errorPage(w, r, http.StatusInternalServerError, "The traffic store could not be read; see the relay's log.")
		return
	}
	for _, day := range f.Days {
		c := day.Total
		if d.Lane != "" {
			c = day.Lanes[d.Lane]
		}
		d.Rows = append(d.Rows, funnelRow{Label: day.Day.Format("2006-01-02"), Day: day.Day, C: c})
		d.Total.Add(c)
	}
	// Sandboxed recipients get a column in sandbox mode, or when a lane
	// is routed to the sandbox.
	show := d.Sandbox || d.Total.Sandboxed > 0 || f.Total.Sandboxed > 0
	for i := range d.Rows {
		d.Rows[i].Sandbox = show
	}
	d.ShowSandboxed = show
	d.TotalRow = funnelRow{Label: "Total", C: d.Total, Sandbox: show}
	for _, lane := range d.Lanes {
		d.ByLane = append(d.ByLane, funnelRow{Label: lane, C: f.Lanes[lane], Sandbox: show})
	}
	for lane, c := range f.Lanes {
		if !slices.Contains(d.Lanes, lane) {
			d.ByLane = append(d.ByLane, funnelRow{Label: fmt.Sprintf("%q", lane), C: c, Sandbox: show})
		}
	}
	d.Chart = newFunnelChart(d.Rows)
	slices.Reverse(d.Rows) // newest first in the table
	s.render(w, r, http.StatusOK, "funnel", "Delivery funnel", d)
}

func newFunnelChart(rows []funnelRow) funnelChart {
	// Drawn to keep its proportions (its labels are text): as wide as the
	// page usually is.
	const w, h = 960, 220
	c := funnelChart{W: w, H: h, X0: padLeft, Y0: padTop, X1: w - padRight, Y1: h - padBottom}
	c.CX, c.CY = (c.X0+c.X1)/2, (c.Y0+c.Y1)/2
	top := 0
	for _, r := range rows {
		top = max(top, r.C.Received, r.C.Accepted+r.C.Failed+r.C.Sandboxed)
	}
	c.Empty = top == 0
	scale := niceCeil(float64(top))
	y := func(v float64) float64 { return c.Y1 - v/scale*(c.Y1-c.Y0) }
	for _, f := range []float64{0, 0.5, 1} {
		c.YTicks = append(c.YTicks, tick{X: c.X0 - 6, Y: y(scale * f), Label: formatValue(scale*f, "")})
	}
	band := (c.X1 - c.X0) / float64(max(len(rows), 1))
	for i, r := range rows {
		x := c.X0 + float64(i)*band + band*0.12
		w := band * 0.76
		b := funnelBar{Label: r.Day.Format("01-02"), X: x + w/2, W: w}
		b.Received = rect{X: x, W: w, Y: y(float64(r.C.Received)), H: c.Y1 - y(float64(r.C.Received)), Class: "received",
			Title: fmt.Sprintf("%s: %d received", r.Label, r.C.Received)}
		events := r.C.Delivered + r.C.Bounced + r.C.Blocked + r.C.Spam + r.C.Unsub
		segs := []struct {
			n     int
			class string
			what  string
		}{{r.C.Delivered, "delivered", "delivered"}, {r.C.Unsub, "unsub", "unsubscribed"}, {r.C.Spam, "spam", "reported as spam"},
			{r.C.Blocked, "blocked", "blocked"}, {r.C.Bounced, "bounced", "bounced"},
			{max(r.C.Accepted-events, 0), "accepted", "accepted, no event yet"},
			{r.C.Failed, "failed", "refused by Mailjet"}, {r.C.Sandboxed, "sandboxed", "sandboxed, not sent"}}
		base := 0
		inner, iw := x+w*0.2, w*0.6
		for _, sg := range segs {
			if sg.n == 0 {
				continue
			}
			y0, y1 := y(float64(base)), y(float64(base+sg.n))
			b.Segs = append(b.Segs, rect{X: inner, W: iw, Y: y1, H: y0 - y1, Class: sg.class,
				Title: fmt.Sprintf("%s: %d %s", r.Label, sg.n, sg.what)})
			base += sg.n
		}
		c.Bars = append(c.Bars, b)
	}
	return c
}
