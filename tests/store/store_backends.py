"""The backends the store contract suite runs against (see conftest.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from jeeves_runner.store import SqliteStore
from jeeves_runner.store.protocols import Store
from postgres_server import SERVER


@dataclass
class Backend:
    """One database for one test. `open()` may be called more than once: each call is a new
    connection to the same data (what a restarted runner, or a second process, would see)."""

    name: str
    open: Callable[[], Store]
    # An error of this backend's driver that its store translates as DatabaseBusyError.
    busy_error: Callable[[], Exception]
    cleanup: Callable[[], None] = field(default=lambda: None)


def _sqlite(tmp_path: Path) -> Backend:
    path = tmp_path / "data" / "runner.sqlite"
    return Backend(
        "sqlite",
        lambda: SqliteStore(path),
        lambda: sqlite3.OperationalError("database is locked"),
    )


def _postgres(tmp_path: Path) -> Backend:
    # A schema of the test run's database with no rows (one an earlier test emptied, or a new
    # one); skips (fails under CI=true) without a server.
    from psycopg import errors as pg_errors

    from jeeves_runner.store.postgres import PostgresStore

    schema, url = SERVER.emptied_schema()
    return Backend(
        "postgres",
        lambda: PostgresStore(url),
        lambda: pg_errors.LockNotAvailable("canceling statement due to lock timeout"),
        lambda: SERVER.give_back(schema),
    )


BACKENDS: dict[str, Callable[[Path], Backend]] = {
    "postgres": _postgres,
    "sqlite": _sqlite,
}
