"""The one place that picks a backend: a PostgreSQL URL opens `PostgresStore`, anything else
is a SQLite file path. psycopg is imported only when a URL asks for it, so the SQLite paths
(and the fast `state`/`queue` verbs) never pay for it."""

from __future__ import annotations

from typing import Protocol

from jeeves_runner.process_lock import ProcessLock
from jeeves_runner.store.locations import is_postgres_url
from jeeves_runner.store.protocols import ClusterLink, Store
from jeeves_runner.store.sqlite import SqliteStore


def open_store(location: str) -> Store:
    """A migrated store on `location` (a `postgresql://` URL or a SQLite file path).
    Raises StoreError with one sentence when it cannot be opened."""
    if is_postgres_url(location):
        from jeeves_runner.store.postgres import PostgresStore

        return PostgresStore(location)
    return SqliteStore(location)


class RunnerLock(Protocol):
    """Held by a running runner: a second one on the same data refuses to start."""

    # How often the runner asks `still_held()`; None: the lock cannot be lost while the
    # process lives.
    watch_interval_s: float | None

    def acquire(self) -> None:
        """Raises DatabaseInUseError when another runner holds it."""
        ...

    def still_held(self) -> bool:
        """False when another runner has taken the lock: this one must stop. Blocks."""
        ...

    def release(self) -> None: ...


def runner_lock(location: str, *, shared: bool = False) -> RunnerLock:
    """A flock on the SQLite file, or an advisory lock in the PostgreSQL schema (`shared`:
    held by every node of a cluster at once, and refused to a single runner)."""
    if is_postgres_url(location):
        from jeeves_runner.store.postgres.runner_lock import PostgresRunnerLock

        return PostgresRunnerLock(location, shared=shared)
    return ProcessLock(location)


def open_cluster_link(url: str, node_id: str) -> ClusterLink:
    """A cluster node's own connections (leader lock, LISTEN): PostgreSQL only."""
    from jeeves_runner.store.postgres.cluster import PostgresClusterLink

    return PostgresClusterLink(url, node_id)
