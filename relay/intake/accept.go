package intake

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/mjrelay/mjrelay/policy"
	"github.com/mjrelay/mjrelay/relay/lanes"
	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// Submission is a message handed in, with the transaction it came in.
type Submission struct {
	Login  string // "" for a client trusted by its network
	Client string // ip:port
	IP     string // the client's address, for the Received header
	Helo   string
	TLS    bool
	UTF8   bool // the client asked for SMTPUTF8
	From   string
	To     []string
	// Message is the message with CRLF line ends.
	Message []byte
	// Buffer, when Message is Buffer[TraceRoom:], is where the message was
	// read with TraceRoom bytes reserved in front: the Received header is
	// written there and the message is stored without a copy. Otherwise
	// (nil, or Message is elsewhere) the two are copied together.
	Buffer []byte
	// Recycled tells that Buffer is used again once Accept returns: an
	// event that keeps the stored bytes gets a copy.
	Recycled bool
	// SenderPending: CheckSender could not check the envelope sender
	// (see CheckSender); Accept checks it, or holds the message.
	SenderPending bool
}

// Receipt is an accepted message: durably queued.
type Receipt struct {
	ID    string // the queue id
	Class lanes.Class
}

// Accept decides on a message: the header From against the sender policy
// (and the envelope sender, if CheckSender could not check it), its lane
// and campaign, pacing for its lane, the Received header and its envelope;
// then it stores it in the queue and records it as received. A Receipt
// means the message is durable; a Refusal says why it is not queued. A
// message whose sender cannot be checked yet is accepted held (see
// Release).
func (in *Intake) Accept(ctx context.Context, sub Submission) (Receipt, *Refusal) {
	info := ParseHeader(sub.Message)
	checkCtx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	refused := func(v policy.Verdict) (Receipt, *Refusal) {
		r := policyRefusal(stageData, v)
		r.From, r.Header, r.Size = sub.From, info, int64(len(sub.Message))
		return Receipt{}, r
	}
	v := in.policy.CheckMessage(checkCtx, sub.Login, sub.From, info.From)
	if !v.Allow && !v.Pending {
		return refused(v)
	}
	in.warn(v, info.From, sub.Login, sub.Client)
	if sub.SenderPending && !v.Pending {
		ve := in.policy.CheckEnvelope(checkCtx, sub.Login, sub.From)
		if !ve.Allow && !ve.Pending {
			return refused(ve)
		}
		in.warn(ve, sub.From, sub.Login, sub.Client)
		if ve.Pending {
			v = ve
		}
	}

	now := time.Now()
	cl := in.classes.Classify(sub.Login, lanes.Facts{HeaderFrom: info.From, ListUnsubscribePost: info.ListUnsubscribePost,
		Precedence: info.Precedence, MailjetPrio: info.MailjetPrio})
	env := &queue.Envelope{
		ID: in.queue.NewID(), Received: now, From: sub.From, To: append([]string(nil), sub.To...),
		User: sub.Login, Client: sub.Client, Helo: sub.Helo, UTF8: sub.UTF8 || !isASCII(sub.From, sub.To),
		HeaderFrom: info.From, Subject: info.Subject, MessageID: info.MessageID,
		Class: string(cl.Class), ClassRule: cl.Rule, Unsubscribe: info.OneClick,
	}
	if v.Pending {
		env.Hold = v.Message
	}
	if in.opts.CampaignFromMailing {
		env.Campaign = lanes.MailingCampaign(info.ListUnsubscribe)
	}
	if in.flow != nil {
		// Bounded by flow_delay; not by checkCtx, which Put still needs.
		in.flow.Pace(ctx, cl.Class)
	}
	trace := receivedHeader(sub.Helo, sub.IP, in.opts.Hostname, env.ID, sub.TLS, sub.Login != "", env.UTF8, env.To, now)
	raw, shared := framed(sub.Buffer, sub.Message, trace)
	if err := in.queue.Put(checkCtx, env, raw); err != nil {
		r := queueFull(stageData)
		if !errors.Is(err, queue.ErrFull) {
			in.log.Error("cannot store message", "err", err, "client", sub.Client)
			r = &Refusal{Code: 451, Enhanced: [3]int{4, 3, 0}, Stage: stageData, Reason: "spool_error",
				Text: "Temporary local problem storing the message, try again later"}
		}
		r.From = sub.From
		return Receipt{}, r
	}
	var keep []byte
	if in.opts.WantBodies {
		keep = raw
		if shared && sub.Recycled {
			keep = bytes.Clone(raw) // the buffer is used again
		}
	}
	in.traffic.Record(trafficlog.NewReceived(*env, sub.TLS, v.Reason, keep))
	return Receipt{ID: env.ID, Class: cl.Class}, nil
}
