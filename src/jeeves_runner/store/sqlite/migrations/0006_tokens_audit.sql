-- Version 6: API access tokens (only their hashes) and the audit log of changes.

CREATE TABLE api_tokens (
    name TEXT PRIMARY KEY,
    scope TEXT NOT NULL CHECK (scope IN ('read', 'trigger', 'admin')),
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    address TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    before_json TEXT,
    after_json TEXT
);
-- No index on `at`: entries come in time order, so reads walk the id backwards and stop at
-- their limit, and the daily prune of a year's entries scans a small table.
