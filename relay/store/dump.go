package store

// Dump is one message as a store holds it, to move it into another store
// (mjrelay migrate --to-cluster): its row with its recipients, its
// timeline's events in the order written, and its raw body (deflated, as
// Deflate makes it; nil when none is kept).
type Dump struct {
	Row      Row
	Events   []StoredEvent
	Body     []byte
	BodySize int64
	// BodyFinal is when the body's keep time started (unix ms; 0 while
	// the message is queued).
	BodyFinal int64
	// Unsubscribe is the message's one-click unsubscribe URL, Feedback
	// its reports to Odoo.
	Unsubscribe string
	Feedback    FeedbackCounts
}
