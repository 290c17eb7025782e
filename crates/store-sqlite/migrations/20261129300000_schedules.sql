-- Schedules (docs/FLOW_CONTROL.md, "Schedules").
--
-- A tick's identity is (schedule_id, scheduled_for, manual): firing it
-- inserts that key and creates its task in one write transaction, so a
-- tick creates one task. `last_tick_at` is the newest tick settled (fired,
-- or skipped by a resume); `anchor` is where intervals count from.
CREATE TABLE schedules (
    id BLOB PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    namespace TEXT NOT NULL,
    template TEXT NOT NULL,
    version TEXT,
    cron TEXT,
    timezone TEXT,
    every_seconds INTEGER,
    catch_up TEXT NOT NULL,
    catch_up_window_seconds INTEGER,
    context TEXT NOT NULL,
    source TEXT NOT NULL,
    paused_at INTEGER,
    anchor INTEGER NOT NULL,
    last_tick_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE schedule_ticks (
    schedule_id BLOB NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    scheduled_for INTEGER NOT NULL,
    manual INTEGER NOT NULL,
    task_id BLOB NOT NULL,
    fired_at INTEGER NOT NULL,
    PRIMARY KEY (schedule_id, scheduled_for, manual)
);
