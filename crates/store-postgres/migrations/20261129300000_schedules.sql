-- Schedules (docs/FLOW_CONTROL.md, "Schedules").
--
-- A tick's identity is (schedule_id, scheduled_for, manual): firing it
-- inserts that key and creates its task in one transaction, under the
-- schedule's row lock, so racing processes create one task per tick.
-- `last_tick_at` is the newest tick settled (fired, or skipped by a
-- resume); `anchor` is where intervals count from.
CREATE TABLE schedules (
    id uuid PRIMARY KEY,
    name text NOT NULL UNIQUE,
    namespace text NOT NULL,
    template text NOT NULL,
    version text,
    cron text,
    timezone text,
    every_seconds bigint,
    catch_up text NOT NULL,
    catch_up_window_seconds bigint,
    context jsonb NOT NULL,
    source text NOT NULL,
    paused_at timestamptz,
    anchor timestamptz NOT NULL,
    last_tick_at timestamptz,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE schedule_ticks (
    schedule_id uuid NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    scheduled_for timestamptz NOT NULL,
    manual boolean NOT NULL,
    task_id uuid NOT NULL,
    fired_at timestamptz NOT NULL,
    PRIMARY KEY (schedule_id, scheduled_for, manual)
);
