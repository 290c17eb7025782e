-- Tasker store, PostgreSQL schema (docs/STORAGE.md).
--
-- Hot-path rule: claiming, finishing and rescuing only touch the partial
-- indexes below, whose size is the frontier of live work, never the history.

CREATE TABLE tasks (
    id              uuid        PRIMARY KEY,
    namespace       text        NOT NULL,
    name            text        NOT NULL,
    version         text        NOT NULL,
    status          text        NOT NULL CHECK (status IN
                        ('pending','in_progress','complete','error','cancelled','resolved_manually')),
    context         jsonb       NOT NULL,
    initiator       text        NOT NULL,
    source_system   text        NOT NULL,
    reason          text        NOT NULL,
    tags            jsonb       NOT NULL DEFAULT '[]'::jsonb,
    correlation_id  text        NOT NULL,
    identity_hash   text,
    steps_total     bigint      NOT NULL,
    -- steps not complete / resolved_manually
    steps_remaining bigint      NOT NULL CHECK (steps_remaining >= 0),
    -- steps in_progress, or pending with ready_at set (work that can still move)
    steps_live      bigint      NOT NULL CHECK (steps_live >= 0),
    -- steps in error or cancelled
    steps_blocked   bigint      NOT NULL CHECK (steps_blocked >= 0),
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    completed_at    timestamptz
);

CREATE TABLE steps (
    id                uuid        PRIMARY KEY,
    task_id           uuid        NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    name              text        NOT NULL,
    position          integer     NOT NULL,
    description       text,
    dependent_system  text        NOT NULL,
    handler_kind      text        NOT NULL,
    handler_config    jsonb       NOT NULL,
    inputs            jsonb       NOT NULL,
    status            text        NOT NULL CHECK (status IN
                          ('pending','in_progress','complete','error','cancelled','resolved_manually')),
    results           jsonb,
    last_error        jsonb,
    attempts          integer     NOT NULL DEFAULT 0,
    max_attempts      integer     NOT NULL,
    retry_limit       integer     NOT NULL,
    retryable         boolean     NOT NULL,
    skippable         boolean     NOT NULL,
    timeout_seconds   double precision,
    remaining_parents integer     NOT NULL CHECK (remaining_parents >= 0),
    -- non-NULL exactly when status = 'pending' AND remaining_parents = 0
    ready_at          timestamptz,
    lease_owner       text,
    lease_token       uuid,
    lease_expires_at  timestamptz,
    last_attempted_at timestamptz,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    completed_at      timestamptz,
    CONSTRAINT steps_ready_only_when_pending
        CHECK (ready_at IS NULL OR (status = 'pending' AND remaining_parents = 0)),
    CONSTRAINT steps_lease_only_when_running
        CHECK ((status = 'in_progress') = (lease_token IS NOT NULL))
);

CREATE TABLE step_edges (
    parent_id uuid NOT NULL REFERENCES steps (id) ON DELETE CASCADE,
    child_id  uuid NOT NULL REFERENCES steps (id) ON DELETE CASCADE,
    task_id   uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    PRIMARY KEY (parent_id, child_id)
);

CREATE TABLE task_transitions (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id    uuid        NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    from_state text,
    to_state   text        NOT NULL,
    created_at timestamptz NOT NULL,
    metadata   jsonb       NOT NULL DEFAULT '{}'::jsonb
);

CREATE TABLE step_transitions (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    step_id    uuid        NOT NULL REFERENCES steps (id) ON DELETE CASCADE,
    task_id    uuid        NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    from_state text,
    to_state   text        NOT NULL,
    created_at timestamptz NOT NULL,
    metadata   jsonb       NOT NULL DEFAULT '{}'::jsonb
);

-- Claiming: only the frontier of claimable work is indexed. (ready_at, id) is
-- exactly the claim's ORDER BY, so `ORDER BY ready_at, id LIMIT n` is an
-- index range scan that stops after n unlocked rows, with no sort.
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
-- History, read per entity only. (Nothing deletes tasks, so the task_id foreign
-- keys of edges and transitions need no index of their own.)
CREATE INDEX task_transitions_task_idx ON task_transitions (task_id, id);
CREATE INDEX step_transitions_step_idx ON step_transitions (step_id, id);
