-- Webhook subscribers and their deliveries (issue 12, docs/EVENTS.md).
-- Times are INTEGER microseconds, UUIDs BLOBs, JSON TEXT, like every table.
--
-- `webhook_deliveries` holds one row per (event, subscriber) pair, written
-- by the dispatcher's fan-out from the subscriber's cursor. Events are
-- referenced by id value (no foreign key: a delivery whose event was pruned
-- is dead-lettered when claimed).

CREATE TABLE webhooks (
    id              BLOB    PRIMARY KEY,
    name            TEXT    NOT NULL UNIQUE,
    url             TEXT    NOT NULL,
    event_types     TEXT    NOT NULL,
    namespaces      TEXT    NOT NULL,
    secret          TEXT,
    max_attempts    INTEGER NOT NULL,
    timeout_ms      INTEGER NOT NULL,
    source          TEXT    NOT NULL,
    event_cursor    INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

CREATE TABLE webhook_deliveries (
    webhook_id       BLOB    NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id         INTEGER NOT NULL,
    task_id          BLOB    NOT NULL,
    event_type       TEXT    NOT NULL,
    event_created_at INTEGER NOT NULL,
    status           TEXT    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_token      BLOB,
    lease_expires_at INTEGER,
    last_error       TEXT,
    last_status_code INTEGER,
    delivered_at     INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (webhook_id, event_id)
) WITHOUT ROWID;

CREATE INDEX webhook_deliveries_pending_idx
    ON webhook_deliveries (event_id) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_task_idx
    ON webhook_deliveries (webhook_id, task_id, event_id) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_status_idx
    ON webhook_deliveries (webhook_id, status, event_id);
