-- Version 8 (SQLite's version 11): where a job may run in cluster mode. A JSON array of labels
-- a node must all carry (its configured labels and its node id); '[]': any node.
ALTER TABLE jobs ADD COLUMN run_on TEXT NOT NULL DEFAULT '[]';
