// Package intake decides what the relay accepts, and how. At MAIL,
// CheckSender says whether a sender may start a transaction (room in the
// queue, the envelope sender policy). At the end of the data, Accept
// checks the header From against the sender policy, picks the message's
// lane (relay/lanes) and Mailjet campaign, paces intake for a lane that is
// far behind, adds the Received header, stores the message durably in the
// queue and records it as received; only then is there a Receipt. What is
// not accepted gets a Refusal: the reply (code, RFC 3463 enhanced code and
// a text that says what to fix) and what the traffic log records of it.
//
// The relay's own uncertainty is never the client's problem: while the
// sender policy cannot run (the Mailjet account state is not known yet),
// the message is accepted and held (queue.Envelope.Hold), and Release runs
// the check it was accepted without once it can: the scheduler
// (relay/deliver) delivers it, or fails it with the refusal the client
// would have been given.
//
// The SMTP server (relay/smtpd) is one front: it speaks the protocol and
// turns a Refusal into its reply. The intake depends on queue.Queue, not
// on a backend, so that another front (an HTTP submission API) or a shared
// queue plugs in here.
package intake

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/mjrelay/mjrelay/policy"
	"github.com/mjrelay/mjrelay/relay/lanes"
	"github.com/mjrelay/mjrelay/relay/queue"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// Options are the intake's settings.
type Options struct {
	// Hostname names the relay in the Received header.
	Hostname string
	// CampaignFromMailing sets the Mailjet campaign of an Odoo mass
	// mailing from its List-Unsubscribe (see lanes.MailingCampaign).
	CampaignFromMailing bool
	// WantBodies makes received events carry a copy of the stored message.
	WantBodies bool
}

// Deps are the parts the intake talks to.
type Deps struct {
	Queue  queue.Queue
	Policy policy.Checker // nil: allow all
	// Classifier picks each message's lane (nil: by the message's header
	// only, see lanes.Classifier).
	Classifier Classifier
	// Flow paces intake by lane (a *deliver.Scheduler); nil: never.
	Flow    Flow
	Traffic trafficlog.Recorder
	Logger  *slog.Logger
}

// Classifier picks a message's delivery lane (a *lanes.Classifier).
type Classifier interface {
	Classify(login string, f lanes.Facts) lanes.Classification
}

// Flow holds back a new message of a class whose lane is far behind; it
// returns how long it waited.
type Flow interface {
	Pace(ctx context.Context, class lanes.Class) time.Duration
}

// Intake decides what is accepted. It is safe for concurrent use.
type Intake struct {
	opts    Options
	queue   queue.Queue
	policy  policy.Checker
	classes Classifier
	flow    Flow
	traffic trafficlog.Recorder
	log     *slog.Logger
}

// New builds an intake over d.Queue.
func New(o Options, d Deps) *Intake {
	in := &Intake{opts: o, queue: d.Queue, policy: d.Policy, classes: d.Classifier, flow: d.Flow,
		traffic: d.Traffic, log: d.Logger}
	if in.policy == nil {
		in.policy = policy.AllowAll{}
	}
	if in.classes == nil {
		in.classes = lanes.NewClassifier(lanes.ClassifierOptions{})
	}
	if in.traffic == nil {
		in.traffic = trafficlog.Discard{}
	}
	if in.log == nil {
		in.log = slog.New(slog.DiscardHandler)
	}
	return in
}

// checkTimeout bounds the sender policy (which may wait for an on-demand
// refresh of the Mailjet account) and, at the end of the data, storing.
const checkTimeout = 20 * time.Second

// Sender is who starts a transaction (MAIL FROM).
type Sender struct {
	Login  string // "" for a client trusted by its network
	Client string // ip:port, for the log
	From   string // the envelope sender
	Size   int64  // the size the client announced (SIZE=), 0 if none
}

// CheckSender runs when a transaction starts: it refuses while the queue
// has no room for a message of the announced size, then checks the
// envelope sender against the sender policy. pending is true when the
// policy could not check the sender yet (the Mailjet account state is not
// known): the transaction goes on, and the front passes that on in
// Submission.SenderPending, so that Accept checks the sender then or holds
// the message.
func (in *Intake) CheckSender(ctx context.Context, s Sender) (pending bool, r *Refusal) {
	if err := in.queue.Admit(s.Size); err != nil {
		return false, queueFull(stageMail)
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	v := in.policy.CheckEnvelope(ctx, s.Login, s.From)
	switch {
	case v.Pending:
		return true, nil
	case !v.Allow:
		r := policyRefusal(stageMail, v)
		r.From = s.From
		return false, r
	}
	in.warn(v, s.From, s.Login, s.Client)
	return false, nil
}

// ErrHeld is Release's answer while a held message's check still cannot
// run.
var ErrHeld = errors.New("intake: the sender cannot be checked yet (the Mailjet account state is not known)")

// Release runs, for a message accepted held (queue.Envelope.Hold), the
// sender check it was accepted without: the envelope sender, then the
// header From, as CheckSender and Accept would have. It returns nil when
// the message may be delivered, ErrHeld while the check still cannot run,
// or the *Refusal the client would have been given (the same reply and
// text): the message then fails for good with it.
func (in *Intake) Release(ctx context.Context, env queue.Envelope) error {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	checks := []struct {
		stage string
		check func() policy.Verdict
	}{
		{stageMail, func() policy.Verdict { return in.policy.CheckEnvelope(ctx, env.User, env.From) }},
		{stageData, func() policy.Verdict { return in.policy.CheckMessage(ctx, env.User, env.From, env.HeaderFrom) }},
	}
	for _, c := range checks {
		v := c.check()
		switch {
		case v.Pending:
			return ErrHeld
		case !v.Allow:
			r := policyRefusal(c.stage, v)
			r.From, r.Size = env.From, env.Size
			r.Header = Header{From: env.HeaderFrom, Subject: env.Subject, MessageID: env.MessageID}
			return r
		}
		in.warn(v, env.From, env.User, env.Client)
	}
	return nil
}

// warn logs the policy's warnings about an allowed sender.
func (in *Intake) warn(v policy.Verdict, from, login, client string) {
	for _, w := range v.Warnings {
		in.log.Warn("sender policy", "warning", w, "from", from, "user", login, "client", client)
	}
}
