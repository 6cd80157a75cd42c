-- Version 11: where a job may run in cluster mode (PostgreSQL only uses it; kept here so a job
-- round-trips through either backend and `migrate --to` copies it). A JSON array of labels a
-- node must all carry; '[]': any node.
ALTER TABLE jobs ADD COLUMN run_on TEXT NOT NULL DEFAULT '[]';
