package store

import (
	"sort"
	"time"
)

// Funnel is the delivery funnel by day and lane, in recipients, as Mailjet
// counts: received → accepted by Mailjet (or refused by it, or recorded in
// sandbox mode) → what Mailjet's events say became of them. Each step is
// counted on the day it happened, as Mailjet's own statistics count it.
type Funnel struct {
	Since time.Time   `json:"since"`
	Until time.Time   `json:"until"`
	Days  []FunnelDay `json:"days"`
	// Lanes are the window's totals by lane, Total all lanes'.
	Lanes map[string]FunnelCounts `json:"lanes"`
	Total FunnelCounts            `json:"total"`
}

// FunnelDay is one day of a Funnel.
type FunnelDay struct {
	// Day is the day's midnight in the location asked.
	Day   time.Time               `json:"day"`
	Lanes map[string]FunnelCounts `json:"lanes"`
	Total FunnelCounts            `json:"total"`
}

// FunnelCounts are the recipients at each step.
type FunnelCounts struct {
	// Received: recipients of the messages received.
	Received int `json:"received"`
	// Accepted: recipients Mailjet accepted; Failed: those it refused for
	// good; Sandboxed: recorded in sandbox mode, never sent.
	Accepted  int `json:"accepted"`
	Failed    int `json:"failed"`
	Sandboxed int `json:"sandboxed"`
	// From Mailjet's events: delivered to the recipient's server, bounced,
	// blocked by Mailjet, reported as spam, unsubscribed.
	Delivered int `json:"delivered"`
	Bounced   int `json:"bounced"`
	Blocked   int `json:"blocked"`
	Spam      int `json:"spam"`
	Unsub     int `json:"unsub"`
}

// Add adds o's counts to c.
func (c *FunnelCounts) Add(o FunnelCounts) {
	c.Received += o.Received
	c.Accepted += o.Accepted
	c.Failed += o.Failed
	c.Sandboxed += o.Sandboxed
	c.Delivered += o.Delivered
	c.Bounced += o.Bounced
	c.Blocked += o.Blocked
	c.Spam += o.Spam
	c.Unsub += o.Unsub
}

// Rate is n out of what Mailjet accepted (0 when it accepted nothing): the
// bounce, block and spam rates Mailjet judges an account by.
func (c FunnelCounts) Rate(n int) float64 {
	if c.Accepted == 0 {
		return 0
	}
	return float64(n) / float64(c.Accepted)
}

// funnelSteps map the per-minute counters to the funnel's steps.
var funnelSteps = map[string]func(*FunnelCounts) *int{
	"rcpt_received":  func(c *FunnelCounts) *int { return &c.Received },
	"rcpt_accepted":  func(c *FunnelCounts) *int { return &c.Accepted },
	"rcpt_failed":    func(c *FunnelCounts) *int { return &c.Failed },
	"rcpt_sandboxed": func(c *FunnelCounts) *int { return &c.Sandboxed },
	"mj_sent":        func(c *FunnelCounts) *int { return &c.Delivered },
	"mj_bounce":      func(c *FunnelCounts) *int { return &c.Bounced },
	"mj_blocked":     func(c *FunnelCounts) *int { return &c.Blocked },
	"mj_spam":        func(c *FunnelCounts) *int { return &c.Spam },
	"mj_unsub":       func(c *FunnelCounts) *int { return &c.Unsub },
}

// maxFunnelDays bounds a funnel (the statistics are kept for
// store.retention anyway).
const maxFunnelDays = 400

// FunnelBuilder makes a Funnel from the per-minute counters, read by
// quarter hour so that any time zone's days are whole: those of the kinds
// Kinds, of the minutes [FromMin, UntilMin).
type FunnelBuilder struct {
	f                 *Funnel
	Kinds             []string
	FromMin, UntilMin int64
}

// NewFunnelBuilder starts the funnel of the days (midnight to midnight in
// loc, UTC when nil) from the one holding since to the one holding until.
func NewFunnelBuilder(since, until time.Time, loc *time.Location) *FunnelBuilder {
	if loc == nil {
		loc = time.UTC
	}
	midnight := func(t time.Time) time.Time {
		t = t.In(loc)
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
	}
	f := &Funnel{Lanes: map[string]FunnelCounts{}}
	last := midnight(until)
	for d := midnight(since); !d.After(last) && len(f.Days) < maxFunnelDays; d = d.AddDate(0, 0, 1) {
		f.Days = append(f.Days, FunnelDay{Day: d, Lanes: map[string]FunnelCounts{}})
	}
	if len(f.Days) == 0 {
		f.Days = append(f.Days, FunnelDay{Day: last, Lanes: map[string]FunnelCounts{}})
	}
	f.Since, f.Until = f.Days[0].Day, f.Days[len(f.Days)-1].Day.AddDate(0, 0, 1)
	b := &FunnelBuilder{f: f, FromMin: f.Since.Unix() / 60, UntilMin: f.Until.Unix() / 60}
	for k := range funnelSteps {
		b.Kinds = append(b.Kinds, k)
	}
	sort.Strings(b.Kinds)
	return b
}

// AddRows adds the counters rows hold: quarter hour (unix minutes / 15),
// kind, class, count.
func (b *FunnelBuilder) AddRows(rows Rows) error {
	f := b.f
	for rows.Next() {
		var quarter int64
		var kind, class string
		var n int
		if err := rows.Scan(&quarter, &kind, &class, &n); err != nil {
			return err
		}
		step := funnelSteps[kind]
		t := time.Unix(quarter*15*60, 0)
		i := sort.Search(len(f.Days), func(i int) bool { return f.Days[i].Day.After(t) }) - 1
		if i < 0 || step == nil {
			continue
		}
		day := &f.Days[i]
		c := day.Lanes[class]
		*step(&c) += n
		day.Lanes[class] = c
	}
	return rows.Err()
}

// Funnel returns the funnel with its totals.
func (b *FunnelBuilder) Funnel() *Funnel {
	f := b.f
	for i := range f.Days {
		day := &f.Days[i]
		for lane, c := range day.Lanes {
			day.Total.Add(c)
			t := f.Lanes[lane]
			t.Add(c)
			f.Lanes[lane] = t
		}
		f.Total.Add(day.Total)
	}
	return f
}
