-- Version 3: the process behind each run, so the next start can end a process group that a
-- runner killed with -9 left running, and never signal a PID the system has since reused.
ALTER TABLE runs ADD COLUMN pid INTEGER;
ALTER TABLE runs ADD COLUMN pgid INTEGER;
-- The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat):
-- a PID with another start time is another process.
ALTER TABLE runs ADD COLUMN process_started INTEGER;
