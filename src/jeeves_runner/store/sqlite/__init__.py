"""The SQLite backend: one file holds jobs, runs, state, queues, tokens and the audit log. The
only SQL for it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from jeeves_runner.store.errors import DatabaseBusyError, DatabaseUnavailableError, StoreError
from jeeves_runner.store.sqlite.access import SqliteAuditStore, SqliteTokenStore
from jeeves_runner.store.sqlite.database import Database
from jeeves_runner.store.sqlite.jobs import SqliteJobStore
from jeeves_runner.store.sqlite.logs import SqliteRunLogStore
from jeeves_runner.store.sqlite.notify_state import SqliteNotifyStateStore
from jeeves_runner.store.sqlite.queues import SqliteQueueStore
from jeeves_runner.store.sqlite.runs import SqliteRunStore
from jeeves_runner.store.sqlite.state import SqliteStateStore


class SqliteStore:
    """One SQLite file: jobs, runs, state and queues (implements `protocols.Store`)."""

    def __init__(self, path: str | Path) -> None:
        self.db = Database(path)
        self.path = self.db.path
        self._jobs = SqliteJobStore(self.db)
        self._runs = SqliteRunStore(self.db)
        self._logs = SqliteRunLogStore(self.db)
        self._state = SqliteStateStore(self.db)
        self._queues = SqliteQueueStore(self.db)
        self._tokens = SqliteTokenStore(self.db)
        self._audit = SqliteAuditStore(self.db)
        self._notify_state = SqliteNotifyStateStore(self.db)

    @property
    def jobs(self) -> SqliteJobStore:
        return self._jobs

    @property
    def runs(self) -> SqliteRunStore:
        return self._runs

    @property
    def logs(self) -> SqliteRunLogStore:
        return self._logs

    @property
    def state(self) -> SqliteStateStore:
        return self._state

    @property
    def queues(self) -> SqliteQueueStore:
        return self._queues

    @property
    def tokens(self) -> SqliteTokenStore:
        return self._tokens

    @property
    def audit(self) -> SqliteAuditStore:
        return self._audit

    @property
    def notify_state(self) -> SqliteNotifyStateStore:
        return self._notify_state

    @property
    def location(self) -> str:
        return self.path

    def data_version(self) -> int:
        return self.db.data_version()

    def write_probe(self) -> None:
        # The schema version written back unchanged: a real page write (to the WAL), so a
        # full disk or a held lock fails it; no row changes.
        with self.db.transaction() as conn:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            conn.execute(f"PRAGMA user_version = {version}")

    def integrity_problem(self) -> str | None:
        try:
            rows = self.db.connection().execute("PRAGMA quick_check").fetchall()
        except StoreError as exc:  # a connection could not even be set up
            return str(exc)
        except sqlite3.DatabaseError as exc:
            return f"{self.path} is not a usable SQLite database ({exc})"
        # One row may hold several problems, one per line, under a "*** in database main ***"
        # heading; the answer is one line whatever SQLite found.
        problems = [
            line.strip()
            for row in rows
            for line in str(row[0]).splitlines()
            if line.strip() and line.strip() != "ok" and not line.startswith("***")
        ]
        if not problems:
            return None
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        return f"{self.path} fails its integrity check: {problems[0]}{more}"

    def translate_error(self, exc: Exception) -> Exception:
        if isinstance(exc, StoreError) or not isinstance(exc, sqlite3.Error):
            return exc
        text = str(exc)
        lowered = text.lower()
        if "locked" in lowered or "busy" in lowered:
            return DatabaseBusyError()
        if "full" in lowered:
            return DatabaseUnavailableError(f"The disk holding {self.path} is full")
        if "malformed" in lowered or "not a database" in lowered or "corrupt" in lowered:
            return DatabaseUnavailableError(f"{self.path} is damaged ({text})")
        if isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError) and not isinstance(
            exc, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.InterfaceError
        ):
            return DatabaseUnavailableError(f"{self.path} cannot be used now ({text})")
        return exc

    def close(self) -> None:
        self.db.close()
