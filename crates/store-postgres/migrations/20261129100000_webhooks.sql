-- Webhook subscribers and their deliveries (issue 12, docs/EVENTS.md).
--
-- `webhook_deliveries` holds one row per (event, subscriber) pair, written
-- by the dispatcher's fan-out (store-postgres/src/webhooks.rs) from the
-- subscriber's cursor. Events are referenced by id *value*: no foreign key
-- to `events` (it may become a partitioned table whose key includes
-- `created_at`), and a delivery whose event was pruned is dead-lettered
-- when claimed.

CREATE TABLE webhooks (
    id              uuid        PRIMARY KEY,
    name            text        NOT NULL UNIQUE,
    url             text        NOT NULL,
    event_types     jsonb       NOT NULL,
    namespaces      jsonb       NOT NULL,
    secret          text,
    max_attempts    integer     NOT NULL,
    timeout_ms      integer     NOT NULL,
    -- `config` (synced from [[webhooks]] at start) or `api`.
    source          text        NOT NULL,
    -- Highest event id already fanned out to this subscriber.
    event_cursor    bigint      NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);

CREATE TABLE webhook_deliveries (
    webhook_id       uuid        NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id         bigint      NOT NULL,
    task_id          uuid        NOT NULL,
    event_type       text        NOT NULL,
    event_created_at timestamptz NOT NULL,
    -- `pending` (waiting or in flight under a lease), `delivered`, `dead`.
    status           text        NOT NULL,
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    lease_owner      text,
    lease_token      uuid,
    lease_expires_at timestamptz,
    last_error       text,
    last_status_code integer,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (webhook_id, event_id)
);

-- The claim's work list (oldest event first) and its per-task order check.
CREATE INDEX webhook_deliveries_pending_idx
    ON webhook_deliveries (event_id) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_task_idx
    ON webhook_deliveries (webhook_id, task_id, event_id) WHERE status = 'pending';
-- Listing a subscriber's deliveries by status.
CREATE INDEX webhook_deliveries_status_idx
    ON webhook_deliveries (webhook_id, status, event_id);
