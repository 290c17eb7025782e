-- Task annotations (issue 14): typed JSON notes written by operators or
-- handlers. `content` is a JSON object (TEXT). Filters look annotations up by
-- type first (`annotations_type_task`), then match content with json_extract
-- on those rows only; reads per task use `annotations_task`.
CREATE TABLE annotations (
    id         BLOB    PRIMARY KEY NOT NULL,
    task_id    BLOB    NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    type       TEXT    NOT NULL,
    content    TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT
);
CREATE INDEX annotations_task ON annotations (task_id, created_at);
CREATE INDEX annotations_type_task ON annotations (type, task_id);
