package pgqueue

import "github.com/mjrelay/mjrelay/relay/pg"

// component names the queue's migrations in mjrelay_migrations.
const component = "queue"

// migrations are the queue's schema, applied by pg.Migrate when a node
// starts. A released migration is never edited: a change is a new one.
//
//   - mjrelay_queue: one row per queued message. envelope is the
//     queue.Envelope as JSON; class is the lane it is claimed in; due is
//     when it may be attempted (next_at, or the time it was queued);
//     owner is the instance that holds the claim (NULL: nobody).
//   - mjrelay_queue_done: the ids that left the queue (tombstones, pruned
//     after a week), so that moving a locally held copy in again, or
//     running the migration twice, never brings a finished message back.
//   - mjrelay_nodes: one row per node instance, its heartbeat (which is
//     the lease of all its claims) and what it reports about itself.
//   - mjrelay_lanes: each lane's cluster-wide token bucket (lane rate).
//
// Version 2: held mail (queue.Envelope.Hold, State.Released). held is
// whether the envelope has a Hold, released whether its check passed; a
// message held and not released is claimed by no lane (see held.go).
var migrations = []pg.Migration{{Version: 1, Name: "queue, tombstones, nodes, lanes", SQL: `
CREATE TABLE mjrelay_queue (
	id text PRIMARY KEY,
	class text NOT NULL,
	envelope bytea NOT NULL,
	size bigint NOT NULL,
	body bytea NOT NULL,
	attempts int NOT NULL DEFAULT 0,
	next_at timestamptz,
	due timestamptz NOT NULL,
	last_error text NOT NULL DEFAULT '',
	pending text[],
	owner text,
	accepted_by text NOT NULL,
	queued_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE mjrelay_queue ALTER COLUMN body SET STORAGE EXTERNAL;
CREATE INDEX mjrelay_queue_due ON mjrelay_queue (class, due, id) WHERE owner IS NULL;
CREATE INDEX mjrelay_queue_owner ON mjrelay_queue (owner) WHERE owner IS NOT NULL;
CREATE TABLE mjrelay_queue_done (
	id text PRIMARY KEY,
	done_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE mjrelay_nodes (
	instance text PRIMARY KEY,
	node text NOT NULL,
	started_at timestamptz NOT NULL DEFAULT now(),
	heartbeat_at timestamptz NOT NULL DEFAULT now(),
	stopped_at timestamptz,
	info jsonb NOT NULL DEFAULT '{}'
);
CREATE TABLE mjrelay_lanes (
	class text PRIMARY KEY,
	tokens double precision NOT NULL,
	at timestamptz NOT NULL
);
`}, {Version: 2, Name: "held mail", SQL: `
ALTER TABLE mjrelay_queue ADD COLUMN held boolean NOT NULL DEFAULT false,
	ADD COLUMN released boolean NOT NULL DEFAULT false;
CREATE INDEX mjrelay_queue_waiting ON mjrelay_queue (id) WHERE held AND NOT released;
`}}
