"""One runner per PostgreSQL schema, as `process_lock.ProcessLock` is one per SQLite file.

A session-level advisory lock held on a connection of its own for the runner's life. The
server releases it when that connection ends, so a runner killed with -9 (or a machine that
vanished, once TCP notices) never blocks the next start. The lock's connection is named after
the host and pid of its runner, which is what a second runner's message shows.

Until cluster mode, two runners on one schema would each close the other's runs as orphans at
start and fire every job twice; this makes the second one refuse to start instead.

The server can end the lock's session while the runner lives (a restart, a failover, an
administrator). The runner asks `still_held()` every `watch_interval_s`: the lock is taken
again on a new session when it is free, and when another runner got it first, the answer is
False and this runner stops. Between the loss and that check (at most the interval) both may
fire; cluster mode is what makes a double fire impossible.
"""

from __future__ import annotations

import os
import socket
from typing import Any

import psycopg

from jeeves_runner.process_lock import DatabaseInUseError
from jeeves_runner.store.errors import StoreError
from jeeves_runner.store.locations import redact_url
from jeeves_runner.store.postgres.database import connect_args, one_line

# (jeeves-runner's own class id, a hash of the schema): advisory locks of other programs in
# the same database use other ids.
_LOCK_CLASS = 0x4A52
_KEY = "hashtext(current_database() || '.' || current_schema())"
_TRY_LOCK = f"SELECT pg_try_advisory_lock({_LOCK_CLASS}, {_KEY})"
_TRY_SHARED = f"SELECT pg_try_advisory_lock_shared({_LOCK_CLASS}, {_KEY})"
_HOLDER = f"""
SELECT a.application_name, coalesce(host(a.client_addr), 'local socket')
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid = {_LOCK_CLASS}::oid AND l.objid = ({_KEY})::oid
"""


class PostgresRunnerLock:
    watch_interval_s: float | None = 2.0

    def __init__(self, url: str, *, shared: bool = False) -> None:
        # Shared: cluster nodes, any number at once; exclusive: a single runner, alone.
        self.shared = shared
        self.url = url
        self.location = redact_url(url)
        self._conn: psycopg.Connection[Any] | None = None

    def still_held(self) -> bool:
        """True while this runner holds the lock (taking it again on a new session when the
        old one was ended and nobody else took it); False when another runner holds it. An
        unreachable server answers True: nobody else can take the lock from it either."""
        conn = self._conn
        if conn is not None:
            try:
                conn.execute("SELECT 1")
                return True
            except psycopg.Error:
                conn.close()
                self._conn = None
        try:
            self.acquire()
        except DatabaseInUseError:
            return False
        except StoreError:
            return True
        return True

    def acquire(self) -> None:
        params = connect_args(self.url)
        params["application_name"] = f"jeeves-runner {socket.gethostname()} pid {os.getpid()}"
        try:
            conn = psycopg.connect(autocommit=True, **params)
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to PostgreSQL at {self.location}: {one_line(exc)}"
            ) from None
        try:
            row = conn.execute(_TRY_SHARED if self.shared else _TRY_LOCK).fetchone()
            if row is None or not row[0]:
                holder = conn.execute(_HOLDER).fetchone()
                who = f"{holder[0]} at {holder[1]}" if holder else "unknown"
                raise DatabaseInUseError(
                    f"another runner ({who}) is already using {self.location}; stop it first"
                )
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def release(self) -> None:
        if self._conn is not None:
            self._conn.close()  # ends the session, and with it the lock
            self._conn = None
