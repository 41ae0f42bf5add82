package pgstore

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mjrelay/mjrelay/relay/store"
)

// pruneChunk is how many messages one pruning transaction removes.
const pruneChunk = 2000

// pruneLock is the advisory lock held by the node that prunes.
const pruneLock = 0x6d6a70727565 // "mjprue"

// pruneEvery prunes a minute after the start, then every PruneEvery,
// unless another node is pruning, until ctx ends; it closes done when it
// returns.
func (s *Store) pruneEvery(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.Quit:
			return
		case <-t.C:
		}
		if err := s.pruneNow(ctx, false); err != nil && ctx.Err() == nil {
			s.log.Warn("pruning the traffic store failed", "err", err)
		}
		t.Reset(s.opts.PruneEvery)
	}
}

// pruneNow removes records past the retention (messages still queued are
// kept up to twice the retention), raw bodies KeepBodies after the message
// left the queue, and old per-minute statistics. One node prunes at a
// time: with wait it waits for another node's run to end, else it leaves
// the work to it.
func (s *Store) pruneNow(ctx context.Context, wait bool) error {
	s.pruneMu.Lock()
	defer s.pruneMu.Unlock()
	conn, err := s.db.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if wait {
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(pruneLock)); err != nil {
			return err
		}
	} else {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, int64(pruneLock)).Scan(&ok); err != nil || !ok {
			return err
		}
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(pruneLock))

	now := s.opts.Now()
	cut, hardCut := store.KeyAt(now.Add(-s.opts.Retention)), store.KeyAt(now.Add(-2*s.opts.Retention))
	removed, bodies := 0, int64(0)
	for {
		n, err := pruneMessages(ctx, conn.Conn(), cut, hardCut)
		if err != nil {
			return err
		}
		removed += n
		if n < pruneChunk {
			break
		}
	}
	bodyCut := now.Add(-s.opts.KeepBodies).UnixMilli()
	for {
		tag, err := conn.Exec(ctx, `DELETE FROM store_bodies WHERE key IN (SELECT key FROM store_bodies
			WHERE final_at IS NOT NULL AND final_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`, bodyCut, pruneChunk)
		if err != nil {
			return err
		}
		bodies += tag.RowsAffected()
		if tag.RowsAffected() < pruneChunk {
			break
		}
	}
	if _, err := conn.Exec(ctx, `DELETE FROM store_stats WHERE minute < $1`, now.Add(-s.opts.Retention).Unix()/60); err != nil {
		return err
	}
	if removed > 0 || bodies > 0 {
		s.log.Info("traffic store pruned", "messages", removed, "raw_messages", bodies)
	}
	return nil
}

// pruneMessages deletes, in one transaction, up to pruneChunk messages
// older than cut (hardCut for those still queued) that no writer holds,
// and everything attached to them.
func pruneMessages(ctx context.Context, conn *pgx.Conn, cut, hardCut int64) (int, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx)
	rows, err := tx.Query(ctx, `DELETE FROM store_messages WHERE key IN (SELECT key FROM store_messages
		WHERE key < $1 AND (state NOT IN ('queued', 'deferred') OR key < $2) ORDER BY key LIMIT $3 FOR UPDATE SKIP LOCKED)
		RETURNING key, mail_from, header_from, rcpt_to`, cut, hardCut, pruneChunk)
	if err != nil {
		return 0, err
	}
	var keys, aKeys []int64
	var addrs []string
	for rows.Next() {
		var r store.Row
		if err := rows.Scan(&r.Key, &r.MailFrom, &r.HeaderFrom, &r.RcptTo); err != nil {
			rows.Close()
			return 0, err
		}
		keys = append(keys, r.Key)
		for _, a := range r.AddrKeys() {
			aKeys, addrs = append(aKeys, r.Key), append(addrs, clean(a))
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(keys) == 0 {
		return 0, err
	}
	var q pgx.Batch
	q.Queue(`DELETE FROM store_addrs a USING unnest($1::text[], $2::bigint[]) AS u(a, key) WHERE a.a = u.a AND a.key = u.key`,
		addrs, aKeys)
	for _, t := range []string{"store_search", "store_events", "store_rcpts", "store_bodies", "store_feedback"} {
		q.Queue(`DELETE FROM `+t+` WHERE key = ANY($1)`, keys)
	}
	if err := tx.SendBatch(ctx, &q).Close(); err != nil {
		return 0, err
	}
	return len(keys), tx.Commit(ctx)
}
