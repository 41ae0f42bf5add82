// Package lanes is the one home of the relay's delivery lanes: the message
// classes (transactional, bulk), the Classifier that sorts each message
// into one, the Mailjet campaign hint read from an Odoo mass mailing, and
// the per-lane settings the scheduler (relay/deliver) runs each lane with.
// Transactional mail never waits behind bulk: each lane has its own queue,
// concurrency, rate and transports, and the first lane is served first.
package lanes

import (
	"time"

	"github.com/mjrelay/mjrelay/mailjet"
)

// Class is a message's delivery lane, as recorded with it (the queue's
// envelope and the traffic events keep it as a string).
type Class string

// The classes.
const (
	Transactional Class = "transactional"
	Bulk          Class = "bulk"
)

// Lane is one delivery lane's settings.
type Lane struct {
	Class       Class            // the class it serves
	Targets     []mailjet.Target // tried in order on temporary failure
	Concurrency int
	Rate        float64 // messages per second, 0 = no cap
	Priority    int     // the Mailjet priority hint, -1 = none
	// FlowBacklog and FlowDelay pace intake (see deliver's Pace); 0 = never.
	FlowBacklog int
	FlowDelay   time.Duration
}
