-- Tasker store, SQLite schema (docs/STORAGE.md).
--
-- Encodings: UUIDs are 16-byte BLOBs, JSON is TEXT, times are INTEGER
-- microseconds since the Unix epoch (UTC).
--
-- Hot-path rule: claiming, finishing and rescuing only touch the partial
-- indexes below, whose size is the frontier of live work, never the history.

CREATE TABLE tasks (
    id              BLOB    PRIMARY KEY NOT NULL,
    namespace       TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    version         TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN
                        ('pending','in_progress','complete','error','cancelled','resolved_manually')),
    context         TEXT    NOT NULL,
    initiator       TEXT    NOT NULL,
    source_system   TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    tags            TEXT    NOT NULL DEFAULT '[]',
    correlation_id  TEXT    NOT NULL,
    identity_hash   TEXT,
    steps_total     INTEGER NOT NULL,
    -- steps not complete / resolved_manually
    steps_remaining INTEGER NOT NULL CHECK (steps_remaining >= 0),
    -- steps in_progress, or pending with ready_at set (work that can still move)
    steps_live      INTEGER NOT NULL CHECK (steps_live >= 0),
    -- steps in error or cancelled
    steps_blocked   INTEGER NOT NULL CHECK (steps_blocked >= 0),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    completed_at    INTEGER
);

CREATE TABLE steps (
    id                BLOB    PRIMARY KEY NOT NULL,
    task_id           BLOB    NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    name              TEXT    NOT NULL,
    position          INTEGER NOT NULL,
    description       TEXT,
    dependent_system  TEXT    NOT NULL,
    handler_kind      TEXT    NOT NULL,
    handler_config    TEXT    NOT NULL,
    inputs            TEXT    NOT NULL,
    status            TEXT    NOT NULL CHECK (status IN
                          ('pending','in_progress','complete','error','cancelled','resolved_manually')),
    results           TEXT,
    last_error        TEXT,
    attempts          INTEGER NOT NULL DEFAULT 0,
    max_attempts      INTEGER NOT NULL,
    retry_limit       INTEGER NOT NULL,
    retryable         INTEGER NOT NULL,
    skippable         INTEGER NOT NULL,
    timeout_seconds   REAL,
    remaining_parents INTEGER NOT NULL CHECK (remaining_parents >= 0),
    -- non-NULL exactly when status = 'pending' AND remaining_parents = 0
    ready_at          INTEGER,
    lease_owner       TEXT,
    lease_token       BLOB,
    lease_expires_at  INTEGER,
    last_attempted_at INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    completed_at      INTEGER,
    CONSTRAINT steps_ready_only_when_pending
        CHECK (ready_at IS NULL OR (status = 'pending' AND remaining_parents = 0)),
    CONSTRAINT steps_lease_only_when_running
        CHECK ((status = 'in_progress') = (lease_token IS NOT NULL))
);

-- Small rows looked up by key only: clustered on the primary key.
CREATE TABLE step_edges (
    parent_id BLOB NOT NULL REFERENCES steps (id) ON DELETE CASCADE,
    child_id  BLOB NOT NULL REFERENCES steps (id) ON DELETE CASCADE,
    task_id   BLOB NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    PRIMARY KEY (parent_id, child_id)
) WITHOUT ROWID;

-- History, append-only. No foreign keys here on purpose: transitions are
-- written on every state change of the hot path and always in the same
-- transaction as the row they describe, so an extra index probe per row would
-- buy nothing.
CREATE TABLE task_transitions (
    id         INTEGER PRIMARY KEY,
    task_id    BLOB    NOT NULL,
    from_state TEXT,
    to_state   TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    metadata   TEXT    NOT NULL DEFAULT '{}'
);

CREATE TABLE step_transitions (
    id         INTEGER PRIMARY KEY,
    step_id    BLOB    NOT NULL,
    task_id    BLOB    NOT NULL,
    from_state TEXT,
    to_state   TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    metadata   TEXT    NOT NULL DEFAULT '{}'
);

-- Claiming: only the frontier of claimable work is indexed. (ready_at, id) is
-- exactly the claim's ORDER BY, so `ORDER BY ready_at, id LIMIT n` is an index
-- range scan that stops after n rows, with no sort.
CREATE INDEX steps_ready_idx ON steps (ready_at, id) WHERE ready_at IS NOT NULL;
-- The rescuer: only running steps.
CREATE INDEX steps_lease_idx ON steps (lease_expires_at) WHERE status = 'in_progress';
-- Running steps per task, for the per-task claim limit (tiny: only running steps).
CREATE INDEX steps_running_task_idx ON steps (task_id) WHERE status = 'in_progress';
-- A task's steps in template order.
CREATE UNIQUE INDEX steps_task_position_idx ON steps (task_id, position);
-- Parents of a step.
CREATE INDEX step_edges_child_idx ON step_edges (child_id);
-- Duplicate detection.
CREATE INDEX tasks_identity_idx ON tasks (identity_hash, created_at) WHERE identity_hash IS NOT NULL;
-- Listings.
CREATE INDEX tasks_created_idx ON tasks (created_at);
CREATE INDEX tasks_status_created_idx ON tasks (status, created_at);
-- History, read per entity only.
CREATE INDEX task_transitions_task_idx ON task_transitions (task_id, id);
CREATE INDEX step_transitions_step_idx ON step_transitions (step_id, id);
