package feedback

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"

	"github.com/mjrelay/mjrelay/mailjet/webhook"
	"github.com/mjrelay/mjrelay/relay/odoo"
	"github.com/mjrelay/mjrelay/relay/store"
)

// find looks the event's message up: by CustomID (the queue id), then by
// Mailjet's message id or UUID. Not found is (nil, nil).
func (r *Reporter) find(ctx context.Context, ev *webhook.Event) (*store.Message, error) {
	if ev.CustomID != "" {
		m, err := r.msgs.Get(ctx, ev.CustomID)
		if err == nil || !errors.Is(err, store.ErrNotFound) {
			return m, err
		}
	}
	q := ev.MessageUUID
	if ev.MessageID != 0 {
		q = strconv.FormatInt(ev.MessageID, 10)
	}
	if q == "" {
		return nil, nil
	}
	p, err := r.msgs.List(ctx, store.Filter{Q: q, Limit: 1})
	if err != nil || len(p.Messages) == 0 {
		return nil, err
	}
	m, err := r.msgs.Get(ctx, p.Messages[0].ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return m, err
}

// original fills a DSN item's particulars from the stored message: its
// header block when its bytes are still kept (store.keep_bodies), else one
// rebuilt from what the store keeps of every message (Message-Id, From,
// To, Subject, date), which is what Odoo needs to find it.
func (r *Reporter) original(ctx context.Context, m *store.Message, it *Item) error {
	it.Arrival = m.ReceivedAt
	it.To = r.o.BounceAddress
	if it.To == "" {
		it.To = m.From
	}
	if body, _, err := r.msgs.Raw(ctx, m.ID); err == nil {
		raw, err := io.ReadAll(io.LimitReader(body, 1<<20))
		if err == nil {
			it.Headers = withMessageID(odoo.HeaderBlock(raw, 64<<10), m.MessageID)
			return nil
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	it.Headers = odoo.Original{MessageID: m.MessageID, From: m.HeaderFrom, To: strings.Join(m.To, ", "),
		Subject: m.Subject, Date: m.ReceivedAt}.Headers()
	return nil
}

// withMessageID makes sure a header block names the Message-Id (a block cut
// short might not).
func withMessageID(h []byte, id string) []byte {
	if id == "" || strings.Contains(strings.ToLower(string(h)), "\nmessage-id:") || strings.HasPrefix(strings.ToLower(string(h)), "message-id:") {
		return h
	}
	return append([]byte("Message-Id: "+id+"\r\n"), h...)
}
