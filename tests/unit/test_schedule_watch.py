"""The watch for changes by other processes: a look that finds the database files unchanged
asks nothing of the store."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jeeves_runner.scheduling.schedule_watch import ScheduleWatch


class CountingGateway:
    def __init__(self) -> None:
        self.probes = 0
        self.version = 1

    async def probe(self, fn: Callable[[Any], Any]) -> Any:
        self.probes += 1
        return self.version


class CountingScheduler:
    def __init__(self) -> None:
        self.reconciles = 0

    async def reconcile_if_changed(self) -> None:
        self.reconciles += 1


def test_unchanged_files_skip_the_store_and_a_commit_is_noticed(tmp_path: Path) -> None:
    db, wal = tmp_path / "r.sqlite", tmp_path / "r.sqlite-wal"
    db.write_bytes(b"x")
    wal.write_bytes(b"")
    gateway, scheduler = CountingGateway(), CountingScheduler()
    watch = ScheduleWatch(scheduler, gateway, files=[db, wal])  # type: ignore[arg-type]

    async def main() -> None:
        await watch.look()  # the first look reads the version
        assert (gateway.probes, scheduler.reconciles) == (1, 1)
        for _ in range(5):
            await watch.look()
        assert gateway.probes == 1, "an idle look asked the store"
        wal.write_bytes(b"a commit")  # another process committed
        gateway.version = 2
        await watch.look()
        assert (gateway.probes, scheduler.reconciles) == (2, 2)
        await watch.look(forced=True)  # forced looks ask whatever the files say
        assert gateway.probes == 3

    asyncio.run(main())
