"""The SQLite file: opening, pragmas, versioned migrations, transactions.

Each thread gets its own connection (sqlite3 connections must not be shared across threads).
Connections run in autocommit mode and every write goes through `transaction()`, so a
write is exactly one explicit transaction.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jeeves_runner.files import create_private_file, private_folder
from jeeves_runner.store.errors import SchemaTooNewError, StoreError

BUSY_TIMEOUT_MS = 10_000

__all__ = ["BUSY_TIMEOUT_MS", "SCHEMA_VERSION", "Database", "SchemaTooNewError", "StoreError"]


# The files sit next to this module (the package is never zipped). Only their names are read
# at import: `importlib.resources` and reading every file cost ~10 ms per CLI call, and a
# database already at SCHEMA_VERSION never needs the text.
_MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_MIGRATION_NAMES = sorted(name for name in os.listdir(_MIGRATIONS_DIR) if name.endswith(".sql"))
SCHEMA_VERSION = len(_MIGRATION_NAMES)


def _migration(number: int) -> str:
    """The SQL text of migration `number` (1-based)."""
    return (_MIGRATIONS_DIR / _MIGRATION_NAMES[number - 1]).read_text(encoding="utf-8")


class Database:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        if self.path != ":memory:":
            parent = Path(self.path).parent
            try:
                private_folder(parent)
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise StoreError(
                    f"cannot create folder {parent} for {self.path}: {reason}"
                ) from None
            try:
                # Made 0600 before SQLite opens it: its -wal and -shm files take the
                # database's mode, so they are private too.
                create_private_file(Path(self.path))
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise StoreError(f"cannot create database {self.path}: {reason}") from None
        try:
            self._migrate()
        except BaseException:
            self.close()  # the caller never gets this object, so nobody else would close it
            raise

    def connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open database {self.path}: {exc}") from None
        conn.row_factory = sqlite3.Row
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            _switch_to_wal(conn)
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"{self.path} is not a usable SQLite database ({exc})") from None
        return conn

    def _migrate(self) -> None:
        # Read the version before any pragma: a file from a newer program must be left
        # exactly as it is, and switching it to WAL would already change its header.
        try:
            probe = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            try:
                version = int(probe.execute("PRAGMA user_version").fetchone()[0])
            finally:
                probe.close()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a usable SQLite database ({exc})") from None
        if version > SCHEMA_VERSION:
            raise SchemaTooNewError(
                f"{self.path} has schema version {version}, newer than this program "
                f"supports ({SCHEMA_VERSION}); upgrade jeeves-runner to use it"
            )
        if version == SCHEMA_VERSION:
            return
        conn = self.connection()
        # A migration that builds a table again (SQLite cannot change a CHECK in place) must
        # not cascade the old table's drop to the rows that refer to it: foreign keys are off
        # while migrating (the pragma is a no-op inside a transaction, so it is set before),
        # and checked before the commit, as SQLite's procedure for such changes asks.
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("BEGIN EXCLUSIVE")
        try:
            # Another process may have migrated while we waited for the lock.
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            for number in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _split(_migration(number)):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
            broken = conn.execute("PRAGMA foreign_key_check").fetchone()
            if broken is not None:
                raise sqlite3.IntegrityError(
                    f"a row of {broken[0]} refers to a missing {broken[2]}"
                )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            # The whole upgrade is one transaction: a failure leaves the file at its old version.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(
                f"cannot migrate {self.path} from schema version {version} to "
                f"{SCHEMA_VERSION} ({exc}); it stays at version {version}"
            ) from None
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.execute("PRAGMA foreign_keys = ON")

    def data_version(self) -> int:
        """Changes when another connection (another process: the CLI, a job script) commits.
        Commits on this thread's own connection do not move it."""
        return int(self.connection().execute("PRAGMA data_version").fetchone()[0])

    def schema_version(self) -> int:
        return int(self.connection().execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def transaction(self, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """One write transaction. IMMEDIATE takes the write lock up front, so two processes
        never both read-then-write on a stale view (the busy timeout makes the other wait)."""
        conn = self.connection()
        conn.execute(f"BEGIN {mode}")
        try:
            yield conn
        except BaseException:
            # SQLite rolls back by itself after some errors (SQLITE_FULL, an interrupt); a
            # second ROLLBACK would then fail and hide the error that matters.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()


def _switch_to_wal(conn: sqlite3.Connection) -> None:
    """WAL mode. Switching a new file needs a moment of exclusive access, and SQLite answers
    "database is locked" at once instead of calling the busy handler when several processes
    open a fresh file together; so wait here, as the busy timeout would."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.001
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def _split(script: str) -> list[str]:
    """Statements of a migration file, one by one (executescript would commit on its own)."""
    statements: list[str] = []
    current: list[str] = []
    for line in script.splitlines():
        stripped = line.strip()
        if stripped.startswith("--") or not stripped:
            continue
        current.append(line)
        if sqlite3.complete_statement("\n".join(current)):
            statements.append("\n".join(current))
            current = []
    if current:
        statements.append("\n".join(current))
    return statements
