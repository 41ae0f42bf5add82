package intake_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mjrelay/mjrelay/mailjet/account"
	"github.com/mjrelay/mjrelay/mailjet/mjtest"
	"github.com/mjrelay/mjrelay/policy"
	"github.com/mjrelay/mjrelay/relay/intake"
	"github.com/mjrelay/mjrelay/relay/spool"
	"github.com/mjrelay/mjrelay/relay/spool/spooltest"
	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

const apiKey, apiSecret = "0123456789abcdef0123456789abcdef", "s3cr3t"

// unknownAccount is a sender policy over the real account cache and the
// Mailjet REST emulator, which is down when the cache starts: the account
// state is not known. known brings the emulator up and refreshes.
func unknownAccount(t *testing.T) (rule *policy.Rule, known func()) {
	t.Helper()
	api := mjtest.NewAPI(apiKey, apiSecret)
	t.Cleanup(api.Close)
	api.AddSender("*@example.com", "Active", "transactional")
	api.SetDown(true)
	client, err := account.NewClient(api.URL(), apiKey, apiSecret, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	cache := account.NewCache(client, account.CacheOptions{})
	if err := cache.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if cache.State().Known() {
		t.Fatal("the account state is known with the API down")
	}
	rule, err = policy.New(policy.Options{HasKeys: true}, cache, nil)
	if err != nil {
		t.Fatal(err)
	}
	return rule, func() {
		api.SetDown(false)
		if _, err := cache.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestHeldWhileAccountUnknown: with the account state unknown, a sender is
// neither refused nor made to wait: the message is queued with a Hold that
// says why, and recorded as received. Release keeps it held while the
// state is unknown, then lets a verified sender go and refuses an
// unverified one with the reply Accept gives once the state is known.
func TestHeldWhileAccountUnknown(t *testing.T) {
	rule, known := unknownAccount(t)
	sp := spooltest.Open(t, "", spool.Options{})
	traffic := &trafficlog.Memory{}
	in := intake.New(intake.Options{Hostname: "relay.test"}, intake.Deps{Queue: sp, Policy: rule, Traffic: traffic})
	ctx := context.Background()

	pending, r := in.CheckSender(ctx, intake.Sender{Login: "odoo", From: "bounce@example.com"})
	if r != nil || !pending {
		t.Fatalf("CheckSender: pending %v, refused %v", pending, r)
	}
	stranger := strings.Replace(mailing, "news@example.com", "news@unverified.example", 1)
	var ids []string
	for _, msg := range []string{mailing, stranger} {
		sub := submission(inBuffer(msg))
		sub.SenderPending = true
		rec, refused := in.Accept(ctx, sub)
		if refused != nil {
			t.Fatalf("refused with the account state unknown: %s", refused.Reply())
		}
		ids = append(ids, rec.ID)
	}
	for _, id := range ids {
		it, err := sp.Get(id)
		if err != nil || !strings.Contains(it.Held(), "Mailjet account state is not known") {
			t.Fatalf("held %q, %v", it.Held(), err)
		}
		if err := in.Release(ctx, it.Envelope); !errors.Is(err, intake.ErrHeld) {
			t.Fatalf("Release with the state unknown: %v", err)
		}
	}
	for _, e := range traffic.Events(trafficlog.Received) {
		if e.Verdict != "account_state_unknown" {
			t.Errorf("received event verdict %q", e.Verdict)
		}
	}

	known()
	verified, _ := sp.Get(ids[0])
	if err := in.Release(ctx, verified.Envelope); err != nil {
		t.Fatalf("Release of a verified sender: %v", err)
	}
	unverified, _ := sp.Get(ids[1])
	err := in.Release(ctx, unverified.Envelope)
	var got *intake.Refusal
	if !errors.As(err, &got) {
		t.Fatalf("Release of an unverified sender: %v", err)
	}
	// The same reply the client gets now that the state is known.
	_, want := in.Accept(ctx, submission(inBuffer(stranger)))
	if want == nil || got.Reply() != want.Reply() || got.Reason != "sender_not_found" || got.Temporary() {
		t.Fatalf("Release refused with %q (%s), Accept with %v", got.Reply(), got.Reason, want)
	}
}

// TestSenderUncheckedAtMailCheckedAtData: the state became known between
// MAIL and the end of the data: the envelope sender is checked then.
func TestSenderUncheckedAtMailCheckedAtData(t *testing.T) {
	rule, known := unknownAccount(t)
	sp := spooltest.Open(t, "", spool.Options{})
	in := intake.New(intake.Options{Hostname: "relay.test"}, intake.Deps{Queue: sp, Policy: rule})
	pending, _ := in.CheckSender(context.Background(), intake.Sender{From: "bounce@unverified.example"})
	if !pending {
		t.Fatal("not pending with the state unknown")
	}
	known()
	sub := submission(inBuffer(mailing))
	sub.From, sub.SenderPending = "bounce@unverified.example", true
	_, r := in.Accept(context.Background(), sub)
	if r == nil || r.Reason != "envelope_domain_unknown" || r.Code != 550 || r.Stage != "data" {
		t.Fatalf("refusal %+v", r)
	}
	if sp.Stats().Messages != 0 {
		t.Fatal("queued")
	}
}
