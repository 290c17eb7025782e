-- API keys (issue 11). Only the SHA-256 of a key is stored; `id` is its
-- public part. Times are INTEGER microseconds like every other table.
CREATE TABLE api_keys (
    id          BLOB PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    hash        TEXT NOT NULL,
    permissions TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER
);
