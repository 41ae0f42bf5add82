package inspect

import (
	"database/sql"
	"encoding/json"
	"strings"
	"time"

	"github.com/mjrelay/mjrelay/mailjet"
	"github.com/mjrelay/mjrelay/mailjet/webhook"
	"github.com/mjrelay/mjrelay/relay/store"
)

// migrations[v] brings a store of schema version v to v+1, inside the
// transaction it is given. Nothing a store held is dropped: new columns
// and counters are worked out from the records already there.
var migrations = map[int]func(*sql.Tx) error{1: migrate1to2}

// migrate1to2 adds the reason label (why), the upstream ids and the
// attachment count of each message, and the funnel's recipient counters,
// and gives the deferred counters their reason. Attachments are counted
// from new messages only: counting the kept bodies would hold the start
// for minutes.
func migrate1to2(tx *sql.Tx) error {
	for _, q := range []string{
		`ALTER TABLE messages ADD COLUMN why TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE messages ADD COLUMN upstream_ids TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE messages ADD COLUMN attachments INTEGER NOT NULL DEFAULT 0`,
		`CREATE INDEX messages_why ON messages(why)`,
		// Mailjet's failures without a reason are labelled by their event,
		// as store.Summary.Why labels them.
		`UPDATE OR IGNORE stats SET reason = substr(kind, 4) WHERE kind IN ('mj_bounce', 'mj_blocked', 'mj_spam') AND reason = ''`,
		// The funnel's recipients: received, then what the relay's outcomes
		// covered (an outcome event lists its recipients unless it is about
		// all of them).
		`INSERT INTO stats (minute, kind, class, reason, n)
			SELECT received_at / 60000, 'rcpt_received', class, '', sum(` + rcptCount("rcpt_to") + `)
			FROM messages WHERE state != 'refused' GROUP BY 1, 3`,
		`INSERT INTO stats (minute, kind, class, reason, n)
			SELECT e.at / 60000, CASE e.kind WHEN 'delivered' THEN 'rcpt_accepted' WHEN 'failed' THEN 'rcpt_failed'
				ELSE 'rcpt_sandboxed' END, m.class, '', sum(coalesce(json_array_length(e.data, '$.to'), ` + rcptCount("m.rcpt_to") + `))
			FROM events e JOIN messages m ON m.key = e.key WHERE e.kind IN ('delivered', 'failed', 'sandboxed') GROUP BY 1, 2, 3`,
	} {
		if _, err := tx.Exec(q); err != nil {
			return err
		}
	}
	for _, f := range []func(*sql.Tx) error{backfillWhy, backfillUpstreamIDs, backfillDeferrals} {
		if err := f(tx); err != nil {
			return err
		}
	}
	return nil
}

// rcptCount is the number of recipients in a newline-separated column.
func rcptCount(col string) string {
	return `CASE WHEN ` + col + ` = '' THEN 1 ELSE length(` + col + `) - length(replace(` + col + `, char(10), '')) + 1 END`
}

// backfillWhy labels the messages in a problem state as the writer does.
func backfillWhy(tx *sql.Tx) error {
	rows, err := tx.Query(`SELECT key, state, stage, reason, reply FROM messages
		WHERE state IN ('refused', 'failed', 'deferred', 'deleted', 'bounced', 'blocked', 'spam')`)
	if err != nil {
		return err
	}
	type update struct {
		key        int64
		why, reply string
	}
	var ups []update
	for rows.Next() {
		var u update
		var state store.State
		var stage, reason string
		if err := rows.Scan(&u.key, &state, &stage, &reason, &u.reply); err != nil {
			rows.Close()
			return err
		}
		switch state {
		case store.StateRefused:
			u.why = store.Clip(stage+": "+reason, 60)
		case store.StateFailed:
			u.why = store.FailReason(mailjet.ParseReply(u.reply), reason)
		case store.StateDeferred:
			u.why = store.ReplyCode(mailjet.ParseReply(u.reply))
		case store.StateDeleted:
			u.why = store.Clip(reason, 60)
		default:
			u.why = "" // from the Mailjet event, below
		}
		ups = append(ups, u)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, u := range ups {
		if u.why == "" {
			var kind string
			var data []byte
			err := tx.QueryRow(`SELECT kind, data FROM events WHERE key = ? AND kind IN ('mj_bounce', 'mj_blocked', 'mj_spam')
				ORDER BY seq DESC LIMIT 1`, u.key).Scan(&kind, &data)
			if err == sql.ErrNoRows {
				continue
			}
			if err != nil {
				return err
			}
			var ev webhook.Event
			if json.Unmarshal(data, &ev) != nil {
				continue
			}
			ev.Event = strings.TrimPrefix(kind, "mj_")
			u.why, u.reply = store.MailjetWhy(&ev), ev.Reply()
		}
		if _, err := tx.Exec(`UPDATE messages SET why = ?, reply = ? WHERE key = ?`, u.why, u.reply, u.key); err != nil {
			return err
		}
	}
	return nil
}

// backfillUpstreamIDs keeps the ids the upstream gave, from the recorded
// attempts and outcomes, and indexes them for search.
func backfillUpstreamIDs(tx *sql.Tx) error {
	rows, err := tx.Query(`SELECT key, data FROM events WHERE kind IN ('attempt', 'delivered', 'failed', 'deferred', 'sandboxed')
		AND instr(data, '"upstream_id"') > 0 ORDER BY key, seq`)
	if err != nil {
		return err
	}
	byKey := map[int64]*store.Row{}
	var keys []int64
	for rows.Next() {
		var key int64
		var data []byte
		if err := rows.Scan(&key, &data); err != nil {
			rows.Close()
			return err
		}
		var d struct {
			UpstreamID string `json:"upstream_id"`
		}
		if json.Unmarshal(data, &d) != nil {
			continue
		}
		r := byKey[key]
		if r == nil {
			r = &store.Row{Key: key}
			byKey[key] = r
			keys = append(keys, key)
		}
		r.AddUpstreamID(d.UpstreamID)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, key := range keys {
		r := byKey[key]
		if _, err := tx.Exec(`UPDATE messages SET upstream_ids = ? WHERE key = ?`, r.UpstreamIDs, key); err != nil {
			return err
		}
		for _, k := range r.NewKeys {
			if _, err := tx.Exec(`INSERT OR IGNORE INTO addrs (a, key) VALUES (?, ?)`, k, key); err != nil {
				return err
			}
		}
	}
	return nil
}

// backfillDeferrals gives the deferred counters the reason of the recorded
// deferrals; the counts stay what they were (a deferral whose message was
// pruned keeps no reason).
func backfillDeferrals(tx *sql.Tx) error {
	rows, err := tx.Query(`SELECT e.at, m.class, e.data FROM events e JOIN messages m ON m.key = e.key WHERE e.kind = 'deferred'`)
	if err != nil {
		return err
	}
	counts := map[store.StatKey]int64{}
	var order []store.StatKey
	for rows.Next() {
		var at int64
		var class string
		var data []byte
		if err := rows.Scan(&at, &class, &data); err != nil {
			rows.Close()
			return err
		}
		var d struct {
			Reply mailjet.Reply `json:"reply"`
		}
		if json.Unmarshal(data, &d) != nil {
			continue
		}
		k := store.StatKey{Minute: time.UnixMilli(at).Unix() / 60, Kind: "deferred", Class: class, Reason: store.ReplyCode(d.Reply)}
		if counts[k] == 0 {
			order = append(order, k)
		}
		counts[k]++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, k := range order {
		var have int64
		err := tx.QueryRow(`SELECT n FROM stats WHERE minute = ? AND kind = 'deferred' AND class = ? AND reason = ''`,
			k.Minute, k.Class).Scan(&have)
		if err == sql.ErrNoRows {
			continue
		}
		if err != nil {
			return err
		}
		n := min(have, counts[k])
		if _, err := tx.Exec(`UPDATE stats SET n = n - ? WHERE minute = ? AND kind = 'deferred' AND class = ? AND reason = ''`,
			n, k.Minute, k.Class); err != nil {
			return err
		}
		if _, err := tx.Exec(`INSERT INTO stats (minute, kind, class, reason, n) VALUES (?, 'deferred', ?, ?, ?)
			ON CONFLICT DO UPDATE SET n = n + excluded.n`, k.Minute, k.Class, k.Reason, n); err != nil {
			return err
		}
	}
	_, err = tx.Exec(`DELETE FROM stats WHERE kind = 'deferred' AND reason = '' AND n <= 0`)
	return err
}
