"""Each job's streak of consecutive failures, for alerts on change (PostgreSQL, migration
0007). Same rules as the SQLite backend."""

from __future__ import annotations

from jeeves_runner.models import RunStatus
from jeeves_runner.notify_model import NotifyStreak, next_failures
from jeeves_runner.store.postgres.database import Database

_ENSURE = """
INSERT INTO notify_state (job_id, failures, last_status, updated_at)
SELECT %(job)s, 0, NULL, NULL WHERE EXISTS (SELECT 1 FROM jobs WHERE id = %(job)s)
ON CONFLICT (job_id) DO NOTHING
"""
_GET = "SELECT failures, last_status, updated_at FROM notify_state WHERE job_id = %(job)s"
# FOR UPDATE: two runners (or two runs) recording at once take turns, each seeing the other's.
_LOCK = _GET + " FOR UPDATE"
_SET = """
UPDATE notify_state SET failures = %(failures)s, last_status = %(status)s, updated_at = %(at)s
WHERE job_id = %(job)s
"""


class PostgresNotifyStateStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def record_outcome(self, job_id: str, status: RunStatus, at: str) -> NotifyStreak | None:
        with self._db.transaction() as conn:
            conn.execute(_ENSURE, {"job": job_id})
            row = conn.execute(_LOCK, {"job": job_id}).fetchone()
            if row is None:
                return None
            before = NotifyStreak(int(row[0]), row[1], row[2])
            after = next_failures(before.failures, status)
            if after is not None:
                conn.execute(
                    _SET, {"failures": after, "status": status.value, "at": at, "job": job_id}
                )
        return before

    def get_streak(self, job_id: str) -> NotifyStreak | None:
        with self._db.connection() as conn:
            row = conn.execute(_GET, {"job": job_id}).fetchone()
        return None if row is None else NotifyStreak(int(row[0]), row[1], row[2])
