"""The PostgreSQL database: connecting, a connection pool, versioned migrations, transactions.

Connections come from one `psycopg_pool.ConnectionPool` shared by every thread (the gateway's
writer, readers and probe; a client's callers). They run in autocommit mode, so a read is one
statement on the newest committed data, and a write that is one statement is its own
transaction (one round trip, where BEGIN ... COMMIT costs three). Writes of several statements
go through `transaction()`.

Migrations are the files in `migrations/` (NNNN_name.sql), applied in order inside one
transaction under an advisory lock, so several processes starting on an empty database
migrate it once; `schema_version` records each one applied. Everything lives in the
connection's current schema (the first of its search_path), so one database can hold several
runners' data, each in a schema named by `options=-csearch_path=...` in the URL.
"""

from __future__ import annotations

import os
import re
import select
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import conninfo as pg_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from jeeves_runner.store.errors import SchemaTooNewError, StoreError
from jeeves_runner.store.locations import redact_url

# How long a statement waits for a row lock another transaction holds before it fails as
# "busy" (SQLite's busy timeout plays this part in the other backend).
LOCK_TIMEOUT_MS = 10_000
CONNECT_TIMEOUT_S = 5
# How long a caller waits for a free connection of the pool.
POOL_TIMEOUT_S = 10.0
DEFAULT_POOL_SIZE = 8

_MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_MIGRATION_NAMES = sorted(name for name in os.listdir(_MIGRATIONS_DIR) if name.endswith(".sql"))
SCHEMA_VERSION = len(_MIGRATION_NAMES)

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""
# One lock per schema: runners of different schemas of one database do not wait for each other.
_MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(hashtext('jeeves-runner migrate ' || %s))"


def _migration(number: int) -> str:
    return (_MIGRATIONS_DIR / _MIGRATION_NAMES[number - 1]).read_text(encoding="utf-8")


def one_line(exc: BaseException) -> str:
    """libpq's messages run over several lines (a hint on the second): one line of text."""
    text = re.sub(r"\s+", " ", str(exc)).strip()
    return text or type(exc).__name__


def output_text(value: str | None) -> str | None:
    """Text for a column: PostgreSQL's text cannot hold NUL, which a process's output or a
    gateway's error may carry; it is stored as U+FFFD, as undecodable bytes already are."""
    return value.replace("\x00", "\ufffd") if value is not None and "\x00" in value else value


def connect_args(url: str) -> dict[str, Any]:
    try:
        params = pg_conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise StoreError(
            f"{redact_url(url)} is not a usable PostgreSQL URL ({one_line(exc)})"
        ) from None
    params.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
    params.setdefault("application_name", "jeeves-runner")
    return params


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.execute(f"SET lock_timeout = {LOCK_TIMEOUT_MS}")


def _check(conn: psycopg.Connection[Any]) -> None:
    """Run by the pool before it hands a connection out: a broken one is replaced instead of
    failing the caller's statement. An idle connection has nothing to read unless the server
    wrote to it on its own, which it does when it ends the session (a restart, a failover,
    pg_terminate_backend): only then is the connection asked for real, so the usual
    hand-out costs one poll of the socket, not a round trip."""
    if conn.closed:
        raise psycopg.OperationalError("the connection is closed")
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    if readable:
        ConnectionPool.check_connection(conn)


class Database:
    def __init__(self, url: str, *, pool_size: int = DEFAULT_POOL_SIZE) -> None:
        self.url = url
        self.location = redact_url(url)
        params = connect_args(url)
        # One connection first: its error (refused, unknown database, bad password) is the
        # one to show, where a pool would only say that it timed out.
        try:
            first = psycopg.connect(autocommit=True, **params)
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to PostgreSQL at {self.location}: {one_line(exc)}"
            ) from None
        try:
            _configure(first)
            self._migrate(first)
        except psycopg.Error as exc:
            raise StoreError(f"cannot use PostgreSQL at {self.location}: {one_line(exc)}") from None
        finally:
            first.close()
        self.pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            kwargs={**params, "autocommit": True},
            min_size=1,
            max_size=max(1, pool_size),
            timeout=POOL_TIMEOUT_S,
            configure=_configure,
            check=_check,
            open=False,
            name=f"jeeves-runner {self.location}",
        )
        try:
            self.pool.open(wait=True, timeout=CONNECT_TIMEOUT_S * 2)
        except PoolTimeout:
            self.pool.close()
            raise StoreError(f"cannot connect to PostgreSQL at {self.location}") from None

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        version = self.current_version(conn)
        if version == SCHEMA_VERSION:
            return
        self._check_not_newer(version)
        schema = conn.execute("SELECT current_schema()").fetchone()
        if schema is None or schema[0] is None:
            raise StoreError(
                f"{self.location} has no schema to create tables in (the schemas of its "
                "search_path do not exist)"
            )
        try:
            with conn.transaction():
                conn.execute(_MIGRATION_LOCK, (schema[0],))
                conn.execute(_VERSION_TABLE)
                # Another process may have migrated while we waited for the lock.
                version = self.current_version(conn)
                self._check_not_newer(version)
                for number in range(version + 1, SCHEMA_VERSION + 1):
                    conn.execute(_migration(number).encode("utf-8"))
                    conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (number,))
        except psycopg.Error as exc:
            # The whole upgrade is one transaction: a failure leaves the schema as it was.
            raise StoreError(
                f"cannot migrate {self.location} from schema version {version} to "
                f"{SCHEMA_VERSION} ({one_line(exc)}); it stays at version {version}"
            ) from None

    def _check_not_newer(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise SchemaTooNewError(
                f"{self.location} has schema version {version}, newer than this program "
                f"supports ({SCHEMA_VERSION}); upgrade jeeves-runner to use it"
            )

    @staticmethod
    def current_version(conn: psycopg.Connection[Any]) -> int:
        exists = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
        if exists is None or not exists[0]:
            return 0
        row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
        return int(row[0]) if row is not None else 0

    def schema_version(self) -> int:
        with self.connection() as conn:
            return self.current_version(conn)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection of the pool, in autocommit mode, for reads."""
        with self.pool.connection() as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """One write transaction (READ COMMITTED; verbs that read before they write lock
        what they read: `FOR UPDATE`, `SKIP LOCKED` or an advisory lock)."""
        with self.pool.connection() as conn, conn.transaction():
            yield conn

    def data_version(self) -> int:
        """Moves when any transaction that wrote commits, in any process (see
        `PostgresStore.data_version`)."""
        with self.connection() as conn:
            row = conn.execute("SELECT pg_current_snapshot()::text").fetchone()
        assert row is not None
        return hash(row[0])

    def close(self) -> None:
        self.pool.close()
