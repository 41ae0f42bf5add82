package intake

import (
	"fmt"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/policy"
)

// The stages a refusal comes at, as the traffic log records them.
const (
	stageMail = "mail"
	stageData = "data"
)

// Refusal is why a sender or a message is not accepted: the reply the
// client gets and what the traffic log records with it.
type Refusal struct {
	// Code and Enhanced (RFC 3463) are the SMTP reply: 4xx is temporary
	// (the client may try again later), 5xx permanent.
	Code     int
	Enhanced [3]int
	// Text is the reply text, written for the admin who reads it in Odoo.
	Text string
	// Stage ("mail", "data") and Reason (e.g. "queue_full",
	// "sender_not_found") are recorded with the refusal.
	Stage  string
	Reason string
	// From is the envelope sender the refusal is about, Header what was
	// read of the message's header and Size its size; they are zero where
	// the refusal comes before them.
	From   string
	Header Header
	Size   int64
}

// Error makes a refusal an error (Release returns it): the reply as sent.
func (r *Refusal) Error() string { return r.Reply().String() }

// Temporary reports whether the client may try again later.
func (r *Refusal) Temporary() bool { return r.Code/100 == 4 }

// Reply is the reply as sent: "452 4.3.1 text".
func (r *Refusal) Reply() mailjet.Reply {
	return mailjet.Reply{Code: r.Code, Enhanced: fmt.Sprintf("%d.%d.%d", r.Enhanced[0], r.Enhanced[1], r.Enhanced[2]), Text: r.Text}
}

// queueFull is the refusal while the queue has no room.
func queueFull(stage string) *Refusal {
	return &Refusal{Code: 452, Enhanced: [3]int{4, 3, 1}, Stage: stage, Reason: "queue_full",
		Text: "Insufficient system storage: the relay's queue is full, try again later"}
}

// policyRefusal is the refusal for a sender policy verdict that does not
// allow (550 5.7.1 unless the verdict says otherwise).
func policyRefusal(stage string, v policy.Verdict) *Refusal {
	code, enh := v.Code, v.Enhanced
	if code == 0 {
		code, enh = 550, [3]int{5, 7, 1}
	}
	return &Refusal{Code: code, Enhanced: enh, Text: v.Message, Stage: stage, Reason: v.Reason}
}
