"""The only code that speaks SQL. Callers use domain verbs: `store.runs.finish_run(...)`."""

from __future__ import annotations

from pathlib import Path

from jeeves_runner.store.sqlite.database import (
    SCHEMA_VERSION,
    Database,
    SchemaTooNewError,
    StoreError,
)
from jeeves_runner.store.sqlite.jobs import JobExistsError, JobStore, ScheduleEntry
from jeeves_runner.store.sqlite.queues import QueueStore
from jeeves_runner.store.sqlite.runs import RunStore
from jeeves_runner.store.sqlite.state import StateStore


class SqliteStore:
    """One SQLite file: jobs, runs, state and queues."""

    def __init__(self, path: str | Path) -> None:
        self.db = Database(path)
        self.path = self.db.path
        self.jobs = JobStore(self.db)
        self.runs = RunStore(self.db)
        self.state = StateStore(self.db)
        self.queues = QueueStore(self.db)

    def close(self) -> None:
        self.db.close()


__all__ = [
    "SCHEMA_VERSION",
    "JobExistsError",
    "ScheduleEntry",
    "SchemaTooNewError",
    "SqliteStore",
    "StoreError",
]
