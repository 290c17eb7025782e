-- Task annotations (issue 14): typed JSON notes written by operators or
-- handlers. Filters look annotations up by type first
-- (`annotations_type_task`), then test `content @> …` on those rows; reads
-- per task use `annotations_task`. The tag filter (`tags @> …`) uses the GIN
-- index on tasks.tags.
CREATE TABLE annotations (
    id         uuid        PRIMARY KEY,
    task_id    uuid        NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    type       text        NOT NULL,
    content    jsonb       NOT NULL,
    created_at timestamptz NOT NULL,
    created_by text
);
CREATE INDEX annotations_task ON annotations (task_id, created_at);
CREATE INDEX annotations_type_task ON annotations (type, task_id);
CREATE INDEX tasks_tags_gin ON tasks USING gin (tags jsonb_path_ops);
