package store

import "time"

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
