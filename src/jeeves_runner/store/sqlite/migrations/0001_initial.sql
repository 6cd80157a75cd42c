-- Version 1: the tables of the original runner.
CREATE TABLE jobs (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    schedule       TEXT NOT NULL,
    script         TEXT NOT NULL,
    type           TEXT NOT NULL DEFAULT 'script' CHECK (type IN ('script', 'session')),
    description    TEXT,
    enabled        INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    timeout_ms     INTEGER,
    overlap_policy TEXT NOT NULL DEFAULT 'skip' CHECK (overlap_policy IN ('skip', 'queue', 'allow')),
    on_failure     TEXT,
    on_success     TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);

CREATE TABLE runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id      TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    status      TEXT NOT NULL
                CHECK (status IN ('pending', 'running', 'ok', 'error', 'timeout', 'skipped')),
    started_at  TEXT,
    finished_at TEXT,
    duration_ms INTEGER,
    exit_code   INTEGER,
    tokens      INTEGER,
    result_meta TEXT,
    error       TEXT,
    stdout      TEXT,
    stderr      TEXT,
    trigger     TEXT NOT NULL DEFAULT 'schedule' CHECK (trigger IN ('schedule', 'manual', 'retry'))
);
CREATE INDEX runs_job_id ON runs (job_id, id);
CREATE INDEX runs_started_at ON runs (started_at);

CREATE TABLE state (
    namespace  TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT,
    expires_at TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (namespace, key)
);

CREATE TABLE state_items (
    namespace  TEXT NOT NULL,
    key        TEXT NOT NULL,
    item_key   TEXT NOT NULL,
    value      TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (namespace, key, item_key),
    FOREIGN KEY (namespace, key) REFERENCES state (namespace, key) ON DELETE CASCADE
);

CREATE TABLE queues (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    description    TEXT,
    dedup_expr     TEXT,
    dedup_scope    TEXT NOT NULL DEFAULT 'pending' CHECK (dedup_scope IN ('pending', 'all')),
    max_attempts   INTEGER NOT NULL DEFAULT 1,
    retention_days INTEGER NOT NULL DEFAULT 7,
    created_at     TEXT NOT NULL
);

CREATE TABLE queue_items (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    queue_id     TEXT NOT NULL REFERENCES queues (id) ON DELETE CASCADE,
    payload      TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'processing', 'done', 'failed')),
    priority     INTEGER NOT NULL DEFAULT 0,
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 1,
    dedup_key    TEXT,
    error        TEXT,
    created_at   TEXT NOT NULL,
    claimed_at   TEXT,
    finished_at  TEXT
);
CREATE INDEX queue_items_claim ON queue_items (queue_id, status, priority DESC, id);
CREATE INDEX queue_items_dedup ON queue_items (queue_id, dedup_key, status);
