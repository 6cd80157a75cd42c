"""Each job's streak of consecutive failures, for alerts on change (migration 0010)."""

from __future__ import annotations

from jeeves_runner.models import RunStatus
from jeeves_runner.notify_model import NotifyStreak, next_failures
from jeeves_runner.store.sqlite.database import Database

# A job's first outcome makes its row; a job deleted a moment ago gets none (and no error).
_ENSURE = """
INSERT INTO notify_state (job_id, failures, last_status, updated_at)
SELECT ?, 0, NULL, NULL WHERE EXISTS (SELECT 1 FROM jobs WHERE id = ?)
ON CONFLICT (job_id) DO NOTHING
"""
_GET = "SELECT failures, last_status, updated_at FROM notify_state WHERE job_id = ?"
_SET = "UPDATE notify_state SET failures = ?, last_status = ?, updated_at = ? WHERE job_id = ?"


class SqliteNotifyStateStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def record_outcome(self, job_id: str, status: RunStatus, at: str) -> NotifyStreak | None:
        # IMMEDIATE: the read and the write are one step for every process on the file.
        with self._db.transaction() as conn:
            conn.execute(_ENSURE, (job_id, job_id))
            row = conn.execute(_GET, (job_id,)).fetchone()
            if row is None:
                return None
            before = NotifyStreak(int(row[0]), row[1], row[2])
            after = next_failures(before.failures, status)
            if after is not None:
                conn.execute(_SET, (after, status.value, at, job_id))
        return before

    def get_streak(self, job_id: str) -> NotifyStreak | None:
        row = self._db.connection().execute(_GET, (job_id,)).fetchone()
        return None if row is None else NotifyStreak(int(row[0]), row[1], row[2])
