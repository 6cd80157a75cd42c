"""store/gateway.py: failures leave as StoreErrors with one sentence, and are counted for
/metrics (`jeeves_runner_database_errors_total`)."""

from __future__ import annotations

import asyncio

import pytest
from store_backends import Backend

from jeeves_runner.store import DatabaseBusyError
from jeeves_runner.store.gateway import StoreGateway
from jeeves_runner.store.protocols import Store


def not_a_database_error(_: Store) -> None:
    raise KeyError("a bug, not the database")


def test_database_errors_are_counted_and_bugs_are_not(store: Store, backend: Backend) -> None:
    gateway = StoreGateway(store)

    def locked(_: Store) -> None:
        raise backend.busy_error()  # what the driver raises for a lock held too long

    async def main() -> None:
        assert await gateway.read(lambda s: s.jobs.count_jobs()) == 0
        for call in (gateway.read, gateway.write):
            with pytest.raises(DatabaseBusyError) as caught:
                await call(locked)
            assert str(caught.value) == "The database is busy; try again"
        with pytest.raises(KeyError):
            await gateway.read(not_a_database_error)

    try:
        asyncio.run(main())
        assert gateway.error_count == 2
    finally:
        gateway.close()


def test_driver_errors_are_told_apart_from_bugs() -> None:
    import sqlite3

    from jeeves_runner.store.errors import is_driver_error

    assert is_driver_error(sqlite3.IntegrityError("FOREIGN KEY constraint failed"))
    assert not is_driver_error(ValueError("a bug"))
