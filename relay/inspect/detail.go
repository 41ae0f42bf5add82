package inspect

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"time"

	"github.com/mjrelay/mjrelay/relay/store"
)

// Get returns a message with its timeline.
func (s *Store) Get(ctx context.Context, id string) (*store.Message, error) {
	r, err := scanRow(s.rdb.QueryRowContext(ctx, `SELECT `+rowColumns+` FROM messages WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT rcpt, state, reply, coalesce(mj_id, 0), coalesce(mj_uuid, '')
		FROM rcpts WHERE key = ?`, r.Key)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		rc := &store.Rcpt{}
		if err := rows.Scan(&rc.Addr, &rc.State, &rc.Reply, &rc.MailjetID, &rc.MailjetUUID); err != nil {
			rows.Close()
			return nil, err
		}
		r.Rcpts = append(r.Rcpts, rc)
	}
	rows.Close()
	var size int64
	hasRaw := true
	if err := s.rdb.QueryRowContext(ctx, `SELECT size FROM bodies WHERE key = ?`, r.Key).Scan(&size); errors.Is(err, sql.ErrNoRows) {
		hasRaw = false
	} else if err != nil {
		return nil, err
	}
	events, err := s.events(ctx, r.Key)
	if err != nil {
		return nil, err
	}
	m := r.Message(events)
	m.HasRaw, m.RawSize = hasRaw, size
	if err := s.feedbackOf(ctx, r.Key, m); err != nil {
		return nil, err
	}
	return m, nil
}

// events returns a message's timeline events in the order written.
func (s *Store) events(ctx context.Context, key int64) ([]store.StoredEvent, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT at, kind, data FROM events WHERE key = ? ORDER BY seq`, key)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.StoredEvent
	for rows.Next() {
		var at int64
		var ev store.StoredEvent
		if err := rows.Scan(&at, &ev.Kind, &ev.Data); err != nil {
			return nil, err
		}
		ev.At = time.UnixMilli(at)
		out = append(out, ev)
	}
	return out, rows.Err()
}

// Raw returns the stored raw message of id (ErrNotFound when there is none:
// bodies are not kept, or already pruned).
func (s *Store) Raw(ctx context.Context, id string) (io.Reader, int64, error) {
	var data []byte
	var size int64
	err := s.rdb.QueryRowContext(ctx, `SELECT b.data, b.size FROM bodies b JOIN messages m ON m.key = b.key
		WHERE m.id = ?`, id).Scan(&data, &size)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, store.ErrNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	return store.Inflate(data), size, nil
}
