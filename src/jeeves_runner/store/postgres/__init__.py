"""The PostgreSQL backend: jobs, runs, run logs, state, queues, tokens and the audit log in
one PostgreSQL schema, reached through psycopg 3 and a connection pool. The only SQL for it.

Selected by `dbUrl: "postgresql://..."` in the config; nothing outside `store/` knows which
backend it has. Importing this package imports psycopg, so callers import it lazily
(`store.opening.open_store`).
"""

from __future__ import annotations

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import PoolTimeout

from jeeves_runner.store.errors import DatabaseBusyError, DatabaseUnavailableError, StoreError
from jeeves_runner.store.postgres.access import PostgresAuditStore, PostgresTokenStore
from jeeves_runner.store.postgres.cluster import PostgresClusterStore
from jeeves_runner.store.postgres.database import (
    DEFAULT_POOL_SIZE,
    SCHEMA_VERSION,
    Database,
    one_line,
)
from jeeves_runner.store.postgres.jobs import PostgresJobStore
from jeeves_runner.store.postgres.logs import PostgresRunLogStore
from jeeves_runner.store.postgres.notify_state import PostgresNotifyStateStore
from jeeves_runner.store.postgres.queues import PostgresQueueStore
from jeeves_runner.store.postgres.runs import PostgresRunStore
from jeeves_runner.store.postgres.state import PostgresStateStore

# SQLSTATEs that mean "another transaction was in the way; the same call may well work if
# tried again": lock_timeout, statement_timeout, deadlock, serialization failure.
_BUSY = (
    pg_errors.LockNotAvailable,
    pg_errors.QueryCanceled,
    pg_errors.DeadlockDetected,
    pg_errors.SerializationFailure,
)


class PostgresStore:
    """One PostgreSQL schema: jobs, runs, run logs, state, queues, tokens and the audit log
    (implements `protocols.Store`)."""

    def __init__(self, url: str, *, pool_size: int = DEFAULT_POOL_SIZE) -> None:
        self.db = Database(url, pool_size=pool_size)
        self.url = url
        self._jobs = PostgresJobStore(self.db)
        self._runs = PostgresRunStore(self.db)
        self._logs = PostgresRunLogStore(self.db)
        self._state = PostgresStateStore(self.db)
        self._queues = PostgresQueueStore(self.db)
        self._tokens = PostgresTokenStore(self.db)
        self._audit = PostgresAuditStore(self.db)
        self._notify_state = PostgresNotifyStateStore(self.db)
        self._cluster = PostgresClusterStore(self.db)

    @property
    def jobs(self) -> PostgresJobStore:
        return self._jobs

    @property
    def runs(self) -> PostgresRunStore:
        return self._runs

    @property
    def logs(self) -> PostgresRunLogStore:
        return self._logs

    @property
    def state(self) -> PostgresStateStore:
        return self._state

    @property
    def queues(self) -> PostgresQueueStore:
        return self._queues

    @property
    def tokens(self) -> PostgresTokenStore:
        return self._tokens

    @property
    def audit(self) -> PostgresAuditStore:
        return self._audit

    @property
    def notify_state(self) -> PostgresNotifyStateStore:
        return self._notify_state

    @property
    def cluster(self) -> PostgresClusterStore:
        return self._cluster

    @property
    def location(self) -> str:
        return self.db.location

    def data_version(self) -> int:
        """The server's current snapshot (`pg_current_snapshot()`): which transactions have
        finished. Any transaction that wrote, in any process on any machine, gets an id and
        changes the snapshot when it commits, so a commit always moves this; equal answers
        mean no write committed in between. No trigger or counter row: a counter bumped by
        every write would be one row every writer of the cluster locks until its commit.
        It also moves for commits in other databases of the same server (a needless cache
        refresh, never a stale one)."""
        return self.db.data_version()

    def write_probe(self) -> None:
        # A transaction id assigned and committed: the commit record goes through the WAL,
        # so a server that cannot write (or be reached) fails it; no row changes.
        with self.db.transaction() as conn:
            conn.execute("SELECT pg_current_xact_id()")

    def integrity_problem(self) -> str | None:
        try:
            with self.db.connection() as conn:
                conn.execute("SELECT 1 FROM jobs LIMIT 1")
                version = self.db.current_version(conn)
        except PoolTimeout:
            return f"cannot connect to PostgreSQL at {self.location}"
        except psycopg.Error as exc:
            return f"PostgreSQL at {self.location} cannot be used ({one_line(exc)})"
        if version != SCHEMA_VERSION:
            return (
                f"PostgreSQL at {self.location} has schema version {version}, "
                f"expected {SCHEMA_VERSION}"
            )
        return None

    def translate_error(self, exc: Exception) -> Exception:
        if isinstance(exc, StoreError):
            return exc
        if isinstance(exc, PoolTimeout):
            return DatabaseUnavailableError(
                f"no connection to PostgreSQL at {self.location} came free in time "
                "(the server may be down or every connection busy)"
            )
        if not isinstance(exc, psycopg.Error):
            return exc
        if isinstance(exc, _BUSY):
            return DatabaseBusyError()
        if isinstance(exc, psycopg.DataError) and "NUL" in str(exc):
            # Bad input, not a database problem: the caller's text holds U+0000.
            return ValueError("PostgreSQL cannot store text holding the NUL character (\\x00)")
        if isinstance(exc, pg_errors.DiskFull):
            return DatabaseUnavailableError(f"The disk of PostgreSQL at {self.location} is full")
        if isinstance(
            exc,
            psycopg.OperationalError
            | psycopg.InterfaceError
            | pg_errors.InsufficientResources
            | pg_errors.ReadOnlySqlTransaction
            | pg_errors.AdminShutdown,
        ):
            return DatabaseUnavailableError(
                f"PostgreSQL at {self.location} cannot be used now ({one_line(exc)})"
            )
        return exc

    def close(self) -> None:
        self.db.close()
