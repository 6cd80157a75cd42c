-- Version 2: what a job needs to run, and where its definition comes from (SQLite's version
-- 5). JSON values stay JSON text, as in SQLite, so a row copies across unchanged.

-- An argv list run without a shell, instead of a script (JSON array; NULL for a script job).
ALTER TABLE jobs ADD COLUMN command TEXT;
-- Arguments appended to the script (JSON array of strings).
ALTER TABLE jobs ADD COLUMN args TEXT NOT NULL DEFAULT '[]';
-- Variables set for the child before the JR_* ones (JSON object of strings).
ALTER TABLE jobs ADD COLUMN env TEXT NOT NULL DEFAULT '{}';
-- The child's working folder; NULL: the script's folder, or the runner's for a command.
ALTER TABLE jobs ADD COLUMN cwd TEXT;
-- IANA zone the schedule is read in; NULL: the runner's.
ALTER TABLE jobs ADD COLUMN timezone TEXT;
-- Free-form labels (JSON array of strings).
ALTER TABLE jobs ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
-- The job file that defines the job; NULL for a job added through the CLI or the API.
ALTER TABLE jobs ADD COLUMN source TEXT;
-- A digest of that file's text when it was applied: an unchanged file is not read again.
ALTER TABLE jobs ADD COLUMN source_digest TEXT;
