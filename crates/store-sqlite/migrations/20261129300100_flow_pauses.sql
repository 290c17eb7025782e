-- Pause / resume a whole namespace or template (docs/FLOW_CONTROL.md).
--
-- One row per paused scope: `name = ''` is the whole namespace. The steps
-- of the scope's open tasks carry `paused` (the claim's ready index
-- already leaves them out); new tasks of a paused scope are created with
-- their steps paused (one writer: no race to guard against).
CREATE TABLE flow_pauses (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    paused_at INTEGER NOT NULL,
    paused_by TEXT,
    reason TEXT,
    PRIMARY KEY (namespace, name)
);
