"""The dispatcher's alert hooks over a real store: a scheduled run that waited past
late_after_ms for a slot is announced late; a run past max_duration_ms is announced overdue
while it runs; every final outcome reaches the notifier with its run id."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from jeeves_runner.clock import FakeClock
from jeeves_runner.execution.dispatch import RunDispatcher
from jeeves_runner.models import Job, RunResult, RunStatus, format_instant
from jeeves_runner.store import SqliteStore
from jeeves_runner.store.gateway import StoreGateway

START = datetime(2026, 3, 2, 2, 26, tzinfo=UTC)


class Held:
    """A started run that ends (ok) when the test releases it."""

    pid = 4_194_305  # past Linux's largest pid: nothing to signal

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self.released = asyncio.Event()

    async def wait(self) -> RunResult:
        await self.released.wait()
        return RunResult(RunStatus.OK, 10, exit_code=0)

    async def stop(self, kill_grace_s: float = 5.0, reason: str | None = None) -> None:
        self.released.set()


class HeldExecutor:
    def __init__(self) -> None:
        self.started: list[Held] = []

    async def spawn(self, job: Job, run_id: int, log: Any = None) -> Held:
        self.started.append(Held(run_id))
        return self.started[-1]


class RecordingNotifier:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.changed = asyncio.Event()

    def notify_run_later(self, job: Job, result: RunResult, run_id: int | None = None) -> None:
        self.calls.append(("outcome", job.id, result.status.value, run_id))

    def run_late(self, job: Job, run_id: int, scheduled_for: str, started_at: str) -> None:
        self.calls.append(("late", job.id, run_id, scheduled_for, started_at))

    def run_overdue(self, job: Job, run_id: int, started_at: str, elapsed_ms: int) -> None:
        self.calls.append(("overdue", job.id, run_id))
        self.changed.set()

    def runs_missed(self, job: Job, run_id: int, count: int, first: str, last: str) -> None:
        self.calls.append(("missed", job.id, run_id))


async def until(predicate: Callable[[], object], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + 5
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


def dispatcher(store: SqliteStore, clock: FakeClock, notifier: RecordingNotifier) -> RunDispatcher:
    return RunDispatcher(
        store=StoreGateway(store),
        executor=HeldExecutor(),  # type: ignore[arg-type]
        sessions=None,
        notifier=notifier,
        clock=clock,
        max_concurrency=1,
    )


def add(store: SqliteStore, job_id: str) -> None:
    job = Job(id=job_id, name=job_id, schedule="* * * * *", script="/x.sh")
    store.jobs.add_job(job, format_instant(START))


def test_a_fire_that_waited_past_late_after_ms_for_a_slot_is_announced_late(
    store: SqliteStore,
) -> None:
    clock, notifier = FakeClock(START), RecordingNotifier()
    add(store, "long")
    add(store, "next")

    async def main() -> None:
        d = dispatcher(store, clock, notifier)
        executor: HeldExecutor = d.executor  # type: ignore[assignment]
        try:
            at = clock.now()
            await d.fire(await d.prepare(["long"], at), at)
            await until(lambda: len(executor.started) == 1, "the long run")
            clock.advance(60)
            at = clock.now()
            await d.fire(await d.prepare(["next"], at), at)  # waits: one slot
            clock.advance(61)  # late_after_ms is 60 s by default
            executor.started[0].released.set()
            await until(lambda: len(executor.started) == 2, "the waiting run")
            executor.started[1].released.set()
            await until(lambda: len(notifier.calls) == 3, "both outcomes")
        finally:
            for held in executor.started:
                held.released.set()
            await d.shutdown(5)
            d.store.close()

    asyncio.run(main())
    late = [c for c in notifier.calls if c[0] == "late"]
    next_run = store.runs.list_runs("next", 10)[0]["id"]
    assert late == [
        ("late", "next", next_run, "2026-03-02T02:27:00.000Z", "2026-03-02T02:28:01.000Z")
    ]
    assert ("outcome", "next", "ok", next_run) in notifier.calls


def test_a_run_past_max_duration_is_announced_while_it_runs(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The store keeps max_duration_ms once the job fields are stored (issue 13's other half);
    # here the job read back is given one.
    add(store, "slow")
    read = store.jobs.get_job
    monkeypatch.setattr(
        store.jobs,
        "get_job",
        lambda job_id: dataclasses.replace(read(job_id), max_duration_ms=20),  # type: ignore[type-var]
    )
    clock, notifier = FakeClock(START), RecordingNotifier()

    async def main() -> None:
        d = dispatcher(store, clock, notifier)
        executor: HeldExecutor = d.executor  # type: ignore[assignment]
        try:
            run_id = await d.start_run("slow")
            await asyncio.wait_for(notifier.changed.wait(), 5)
            assert ("overdue", "slow", run_id) in notifier.calls
            executor.started[0].released.set()
            await until(lambda: any(c[0] == "outcome" for c in notifier.calls), "the outcome")
            assert d.run_watch.timers == 0
        finally:
            for held in executor.started:
                held.released.set()
            await d.shutdown(5)
            d.store.close()

    asyncio.run(main())


def test_a_run_that_ends_in_time_leaves_no_timer(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    add(store, "quick")
    read = store.jobs.get_job
    monkeypatch.setattr(
        store.jobs,
        "get_job",
        lambda job_id: dataclasses.replace(read(job_id), max_duration_ms=60_000),  # type: ignore[type-var]
    )
    clock, notifier = FakeClock(START), RecordingNotifier()

    async def main() -> None:
        d = dispatcher(store, clock, notifier)
        executor: HeldExecutor = d.executor  # type: ignore[assignment]
        try:
            await d.start_run("quick")
            await until(lambda: d.run_watch.timers == 1, "the run's timer")
            executor.started[0].released.set()
            await until(lambda: any(c[0] == "outcome" for c in notifier.calls), "the outcome")
            assert d.run_watch.timers == 0
        finally:
            await d.shutdown(5)
            d.store.close()

    asyncio.run(main())
    assert [c[0] for c in notifier.calls] == ["outcome"]
