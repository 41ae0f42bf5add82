package pgstore

import "github.com/mjrelay/mjrelay/relay/pg"

// Component is the store's name in relay/pg's migrations.
const Component = "store"

// Layout notes.
//
//   - store_messages.key encodes the receive time (store.KeyAt plus a
//     number each writer draws), so that "the latest 50 with state X" is a
//     backward scan of (state, key), a time range a key range and the page
//     cursor a key. Its unique id is the queue id.
//   - store_search holds the words of a message (subject, addresses, ids;
//     see search.go) apart from the message, so that the frequent updates
//     of a message's state do not rewrite its full-text index entries.
//   - store_addrs holds one row per address and domain of a message, and
//     per id the upstream gave it (store.Row.AddrKeys), keyed (a, key):
//     "to x@y, newest first" is one backward range scan.
//   - why is the reason label of a message in a problem state
//     (store.Summary.Why), indexed as (why, key) for the reason filter.
//   - store_events are keyed by message and by a hash of the event
//     (evkey), which makes recording idempotent: an event recorded twice
//     (by two nodes, a retried batch, a migration run again) is kept and
//     counted once. seq orders events of the same millisecond.
//   - store_feedback keeps a message's reports to Odoo (counts by where
//     they stand, store.FeedbackCounts) and its one-click unsubscribe URL.
//   - store_stats are per-minute counters; origin is "" for what the
//     nodes count and the source of a migrated store for what it brought.
var migrations = []pg.Migration{{Version: 1, Name: "traffic store", SQL: `
CREATE TABLE store_messages (
	key         bigint PRIMARY KEY,
	id          text NOT NULL UNIQUE,
	received_at bigint NOT NULL,
	updated_at  bigint NOT NULL,
	final_at    bigint,
	state       text NOT NULL,
	class       text NOT NULL DEFAULT '',
	class_rule  text NOT NULL DEFAULT '',
	mail_from   text NOT NULL DEFAULT '',
	rcpt_to     text NOT NULL DEFAULT '',
	header_from text NOT NULL DEFAULT '',
	subject     text NOT NULL DEFAULT '',
	message_id  text NOT NULL DEFAULT '',
	size        bigint NOT NULL DEFAULT 0,
	login       text NOT NULL DEFAULT '',
	client      text NOT NULL DEFAULT '',
	helo        text NOT NULL DEFAULT '',
	tls         boolean NOT NULL DEFAULT false,
	verdict     text NOT NULL DEFAULT '',
	reason      text NOT NULL DEFAULT '',
	stage       text NOT NULL DEFAULT '',
	reply       text NOT NULL DEFAULT '',
	transport   text NOT NULL DEFAULT '',
	upstream    text NOT NULL DEFAULT '',
	attempts    integer NOT NULL DEFAULT 0,
	mailjet_ids text NOT NULL DEFAULT '',
	latency_ms  double precision,
	why          text NOT NULL DEFAULT '',
	upstream_ids text NOT NULL DEFAULT '',
	attachments  integer NOT NULL DEFAULT 0
) WITH (fillfactor = 85);
CREATE INDEX store_messages_state ON store_messages (state, key);
CREATE INDEX store_messages_why ON store_messages (why, key) WHERE why <> '';
CREATE INDEX store_messages_class ON store_messages (class, key);
CREATE TABLE store_search (key bigint PRIMARY KEY, words tsvector NOT NULL);
CREATE INDEX store_search_words ON store_search USING gin (words);
CREATE TABLE store_addrs (a text NOT NULL, key bigint NOT NULL, PRIMARY KEY (a, key));
CREATE TABLE store_rcpts (
	key        bigint NOT NULL,
	rcpt       text NOT NULL,
	state      text NOT NULL,
	reply      text NOT NULL DEFAULT '',
	mj_id      bigint,
	mj_uuid    text,
	updated_at bigint NOT NULL,
	PRIMARY KEY (key, rcpt)
);
CREATE INDEX store_rcpts_mj_id ON store_rcpts (mj_id) WHERE mj_id IS NOT NULL;
CREATE INDEX store_rcpts_mj_uuid ON store_rcpts (mj_uuid) WHERE mj_uuid IS NOT NULL;
CREATE TABLE store_events (
	key   bigint NOT NULL,
	evkey bigint NOT NULL,
	seq   bigint GENERATED ALWAYS AS IDENTITY,
	at    bigint NOT NULL,
	kind  text NOT NULL,
	data  text NOT NULL,
	PRIMARY KEY (key, evkey)
);
CREATE TABLE store_bodies (key bigint PRIMARY KEY, final_at bigint, size bigint NOT NULL, data bytea NOT NULL);
ALTER TABLE store_bodies ALTER COLUMN data SET STORAGE EXTERNAL; -- deflated already
CREATE INDEX store_bodies_final ON store_bodies (final_at) WHERE final_at IS NOT NULL;
CREATE TABLE store_feedback (
	key         bigint PRIMARY KEY,
	unsubscribe text NOT NULL DEFAULT '',
	pending     integer NOT NULL DEFAULT 0,
	reported    integer NOT NULL DEFAULT 0,
	failed      integer NOT NULL DEFAULT 0,
	alerts      integer NOT NULL DEFAULT 0,
	state       text NOT NULL DEFAULT ''
);
CREATE INDEX store_feedback_state ON store_feedback (state, key) WHERE state <> '';
CREATE TABLE store_stats (
	minute  bigint NOT NULL,
	kind    text NOT NULL,
	class   text NOT NULL,
	reason  text NOT NULL,
	origin  text NOT NULL DEFAULT '',
	n       bigint NOT NULL,
	lat_sum double precision NOT NULL DEFAULT 0,
	lat_max double precision NOT NULL DEFAULT 0,
	PRIMARY KEY (minute, kind, class, reason, origin)
);
`}}
