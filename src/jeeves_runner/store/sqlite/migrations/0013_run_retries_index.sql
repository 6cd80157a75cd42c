-- Version 13: the retries of a run found by its id (the dashboard's links between the tries
-- of one first run), without walking every later run of the job. Partial: first tries, the
-- most of the rows, are not in it.
CREATE INDEX runs_retries ON runs (retry_of) WHERE retry_of IS NOT NULL;
