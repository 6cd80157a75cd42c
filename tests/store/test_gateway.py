"""store/gateway.py: failures leave as StoreErrors with one sentence, and are counted for
/metrics (`jeeves_runner_database_errors_total`)."""

from __future__ import annotations

import asyncio

import pytest
from store_backends import Backend

from jeeves_runner.store import DatabaseBusyError
from jeeves_runner.store import gateway as gateway_module
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


def test_a_failed_write_is_cleared_by_the_recovery_probe_when_nothing_else_writes(
    store: Store, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gateway_module, "RECOVERY_PROBE_S", 0.02)
    gateway = StoreGateway(store)

    def full(_: Store) -> None:
        raise backend.busy_error()  # any write the database refused

    async def main() -> None:
        with pytest.raises(DatabaseBusyError):
            await gateway.write(full)
        assert gateway.problem() is not None
        # No other write comes: the probe's own harmless write finds the database writable.
        deadline = asyncio.get_running_loop().time() + 5
        while gateway.problem() is not None:
            assert asyncio.get_running_loop().time() < deadline, "the problem never cleared"
            await asyncio.sleep(0.01)

    try:
        asyncio.run(main())
    finally:
        gateway.close()


def test_the_write_probe_writes_and_changes_no_data(store: Store) -> None:
    before = (store.jobs.count_jobs(), store.jobs.schedule_fingerprint())
    store.write_probe()
    store.write_probe()
    assert (store.jobs.count_jobs(), store.jobs.schedule_fingerprint()) == before
