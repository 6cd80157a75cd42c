"""The dispatcher over a real store, with a stand-in executor whose runs last until the test
ends them: overlap policies, skip rows, the concurrency wait — no processes, no waiting on
whole seconds."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog.testing

from jeeves_runner.clock import FakeClock
from jeeves_runner.control import ShuttingDownError
from jeeves_runner.execution.dispatch import RunDispatcher
from jeeves_runner.execution.result_journal import ResultJournal
from jeeves_runner.execution.run_log import RunLog
from jeeves_runner.models import (
    STOPPED_BEFORE_RUN,
    Job,
    LogStream,
    OverlapPolicy,
    RunResult,
    RunStatus,
    format_instant,
)
from jeeves_runner.store import SqliteStore
from jeeves_runner.store.gateway import StoreGateway
from jeeves_runner.store.sqlite import database

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SKIP_REASON = "the previous run was still in flight (overlap policy skip)"


class HeldProcess:
    """A started run that ends (ok) when the test releases it."""

    pid = 4_194_305  # past Linux's largest pid: no such process, nothing to signal

    def __init__(self, job_id: str, run_id: int, log: RunLog | None = None) -> None:
        self.job_id = job_id
        self.run_id = run_id
        self.log = log
        self.released = asyncio.Event()
        self.ended = False
        self.cancelled: str | None = None

    async def wait(self) -> RunResult:
        await self.released.wait()
        self.ended = True
        if self.cancelled is not None:
            return RunResult(status=RunStatus.CANCELLED, duration_ms=10, error=self.cancelled)
        return RunResult(status=RunStatus.OK, duration_ms=10, exit_code=0, stdout=self.job_id)

    async def stop(self, kill_grace_s: float = 5.0, reason: str | None = None) -> None:
        self.released.set()

    async def cancel(self, reason: str) -> None:
        self.cancelled = reason
        self.released.set()
        while not self.ended:
            await asyncio.sleep(0)


class HeldExecutor:
    def __init__(self) -> None:
        self.started: list[HeldProcess] = []

    async def spawn(self, job: Job, run_id: int, log: RunLog | None = None) -> HeldProcess:
        process = HeldProcess(job.id, run_id, log)
        self.started.append(process)
        return process

    def running(self) -> list[HeldProcess]:
        return [p for p in self.started if not p.ended]


class Harness:
    def __init__(self, store: SqliteStore, max_concurrency: int) -> None:
        self.store = store
        self.clock = FakeClock(START)
        self.executor = HeldExecutor()
        self.gateway = StoreGateway(store)
        self.dispatcher = RunDispatcher(
            store=self.gateway,
            executor=self.executor,  # type: ignore[arg-type]
            sessions=None,
            notifier=None,
            clock=self.clock,
            max_concurrency=max_concurrency,
        )

    def add_job(self, job_id: str, policy: OverlapPolicy = OverlapPolicy.SKIP) -> None:
        job = Job(
            id=job_id, name=job_id, schedule="* * * * * *", script="/x.sh", overlap_policy=policy
        )
        self.store.jobs.add_job(job, format_instant(self.clock.now()))

    async def fire(self, *job_ids: str) -> str:
        """One fire of these jobs at the clock's next whole second; returns its instant."""
        self.clock.advance(1)
        at = self.clock.now()
        await self.dispatcher.fire(await self.dispatcher.prepare(list(job_ids), at), at)
        return format_instant(at)

    def runs(self, job_id: str) -> list[dict[str, Any]]:
        return sorted(self.store.runs.list_runs(job_id, 1000), key=lambda r: r["id"])

    def skip_rows(self, job_id: str) -> list[dict[str, Any]]:
        return [r for r in self.runs(job_id) if r["status"] == "skipped"]


async def until(predicate: Callable[[], object], what: str, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


async def settle() -> None:
    """Long enough for anything the loop would start now to have started."""
    await asyncio.sleep(0.05)


@pytest.fixture
def harness(store: SqliteStore) -> Harness:
    return Harness(store, max_concurrency=4)


def run(harness: Harness, scenario: Callable[[Harness], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        try:
            await scenario(harness)
        finally:
            for process in harness.executor.started:
                process.released.set()
            await harness.dispatcher.shutdown(5)
            harness.gateway.close()

    asyncio.run(main())


def test_a_skip_is_logged_at_info_once_per_in_flight_run(harness: Harness) -> None:
    async def scenario(h: Harness) -> None:
        h.add_job("s")
        await h.fire("s")
        await until(lambda: len(h.executor.started) == 1, "the first run")
        with structlog.testing.capture_logs() as logs:
            for _ in range(3):
                await h.fire("s")
        skips = [(e["log_level"], e["job_id"]) for e in logs if e["event"] == "fire skipped"]
        assert skips == [("info", "s"), ("debug", "s"), ("debug", "s")]
        h.executor.started[0].released.set()
        await until(lambda: h.runs("s")[0]["status"] == "ok", "the first run to be recorded")

    run(harness, scenario)


def test_skips_collapse_into_one_row_per_in_flight_run(harness: Harness) -> None:
    async def scenario(h: Harness) -> None:
        h.add_job("s")
        await h.fire("s")
        await until(lambda: len(h.executor.started) == 1, "the first run")
        first_skip = await h.fire("s")
        await h.fire("s")
        last_skip = await h.fire("s")
        (row,) = h.skip_rows("s")
        assert (row["skipped_count"], row["started_at"], row["last_skipped_at"]) == (
            3,
            first_skip,
            last_skip,
        )
        assert row["error"] == SKIP_REASON

        h.executor.started[0].released.set()
        await until(lambda: h.runs("s")[0]["status"] == "ok", "the first run to be recorded")
        await h.fire("s")
        await until(lambda: len(h.executor.started) == 2, "the second run")
        during_second = await h.fire("s")
        # A new in-flight run starts a new row; the first one is left as it was.
        old, new = h.skip_rows("s")
        assert old == row
        assert (new["skipped_count"], new["started_at"], new["last_skipped_at"]) == (
            1,
            during_second,
            during_second,
        )
        await until(
            lambda: [r["status"] for r in h.runs("s")] == ["ok", "skipped", "running", "skipped"],
            "the second run to be marked running",
        )

    run(harness, scenario)


def test_queue_policy_holds_one_fire_until_the_current_run_ends(harness: Harness) -> None:
    async def scenario(h: Harness) -> None:
        h.add_job("q", OverlapPolicy.QUEUE)
        await h.fire("q")
        await until(lambda: len(h.executor.started) == 1, "the first run")
        await h.fire("q")  # queued
        await h.fire("q")  # one already waits: skipped
        await settle()
        assert len(h.executor.started) == 1, "the queued run started alongside the first"
        (skip,) = h.skip_rows("q")
        assert skip["error"] == "a run is in flight and another is already queued"

        h.executor.started[0].released.set()
        await until(lambda: len(h.executor.started) == 2, "the queued run")
        assert h.executor.started[0].ended
        # The queued place is free again: the next fire queues rather than being skipped.
        await h.fire("q")
        await settle()
        assert len(h.skip_rows("q")) == 1
        h.executor.started[1].released.set()
        await until(lambda: len(h.executor.started) == 3, "the run queued behind the second")
        assert h.executor.started[1].ended
        h.executor.started[2].released.set()
        await until(
            lambda: [r["status"] for r in h.runs("q")] == ["ok", "ok", "skipped", "ok"],
            "three finished runs and the one skip",
        )

    run(harness, scenario)


def test_allow_policy_runs_every_fire_at_once(harness: Harness) -> None:
    async def scenario(h: Harness) -> None:
        h.add_job("a", OverlapPolicy.ALLOW)
        for _ in range(3):
            await h.fire("a")
        await until(lambda: len(h.executor.running()) == 3, "three concurrent runs")
        assert h.skip_rows("a") == []

    run(harness, scenario)


def test_max_concurrency_is_a_first_in_first_out_wait(store: SqliteStore) -> None:
    async def scenario(h: Harness) -> None:
        for job_id in ("j1", "j2", "j3", "j4"):
            h.add_job(job_id)
        await h.fire("j1", "j2", "j3")
        await h.fire("j4")
        await until(lambda: len(h.executor.started) == 1, "the first run")
        await settle()
        assert [p.job_id for p in h.executor.started] == ["j1"]
        for n in range(1, 4):
            h.executor.started[-1].released.set()
            await until(lambda n=n: len(h.executor.started) == n + 1, f"run {n + 1}")
            assert len(h.executor.running()) == 1, "two runs held a single slot"
        # None of the waiting fires was lost or skipped, and they ran in fire order.
        assert [p.job_id for p in h.executor.started] == ["j1", "j2", "j3", "j4"]
        for job_id in ("j1", "j2", "j3", "j4"):
            assert h.skip_rows(job_id) == []
        # Every slot came back: with all runs over, a new fire starts at once.
        h.executor.started[-1].released.set()
        await until(lambda: not h.executor.running(), "the last run to end")
        await h.fire("j1")
        await until(lambda: len(h.executor.started) == 5, "a fire after the queue drained")

    run(Harness(store, max_concurrency=1), scenario)


def test_a_flood_of_manual_runs_never_puts_a_fire_behind_more_than_max_concurrency(
    store: SqliteStore,
) -> None:
    async def scenario(h: Harness) -> None:
        for n in range(10):
            h.add_job(f"m{n}", OverlapPolicy.ALLOW)
        h.add_job("scheduled")
        manual = [asyncio.ensure_future(h.dispatcher.trigger(f"m{n}")) for n in range(10)]
        await until(lambda: len(h.executor.started) == 2, "two manual runs in the two slots")
        await settle()
        await h.fire("scheduled")
        await settle()
        assert len(h.executor.started) == 2
        # The scheduled fire waited behind the two manual runs only, not all ten.
        h.executor.started[0].released.set()
        await until(lambda: len(h.executor.started) == 3, "the next start")
        assert h.executor.started[2].job_id == "scheduled"
        for process in h.executor.started:
            process.released.set()
        while len(h.executor.started) < 11 or h.executor.running():
            for process in h.executor.started:
                process.released.set()
            await asyncio.sleep(0.005)
        results = await asyncio.gather(*manual)
        assert {r.status for r in results} == {RunStatus.OK}

    run(Harness(store, max_concurrency=2), scenario)


def test_a_fire_waits_out_a_locked_database_and_is_written_when_it_frees(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A short busy timeout, so a locked write fails (and is tried again) within the test.
    monkeypatch.setattr(database, "BUSY_TIMEOUT_MS", 50)
    store = SqliteStore(tmp_path / "locked.sqlite")

    async def scenario(h: Harness) -> None:
        h.add_job("j")
        other = sqlite3.connect(store.path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        fire = asyncio.ensure_future(h.fire("j"))
        await asyncio.sleep(0.4)  # several refused tries
        assert not fire.done(), "the fire went on without its row"
        assert h.gateway.problem() is not None
        other.execute("COMMIT")
        other.close()
        await asyncio.wait_for(fire, 5)
        await until(lambda: len(h.executor.started) == 1, "the run")
        h.executor.started[0].released.set()
        await until(lambda: h.runs("j") and h.runs("j")[0]["status"] == "ok", "its record")
        assert h.gateway.problem() is None

    try:
        run(Harness(store, max_concurrency=1), scenario)
    finally:
        store.close()


def test_a_result_the_database_refuses_until_the_end_goes_to_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "BUSY_TIMEOUT_MS", 50)
    store = SqliteStore(tmp_path / "locked.sqlite")
    journal = ResultJournal(tmp_path / "locked.sqlite.unrecorded.jsonl")
    other = sqlite3.connect(store.path, isolation_level=None)

    async def scenario(h: Harness) -> None:
        h.dispatcher.journal = journal
        h.add_job("j")
        await h.fire("j")
        await until(lambda: len(h.executor.started) == 1, "the run")
        other.execute("BEGIN IMMEDIATE")
        h.executor.started[0].released.set()
        await h.dispatcher.shutdown(0.2)  # still locked at the end

    try:
        run(Harness(store, max_concurrency=1), scenario)
        other.execute("COMMIT")
        (kept,) = [json.loads(line) for line in journal.path.read_text().splitlines()]
        assert kept["status"] == "ok"
        assert store.runs.list_runs("j", 5)[0]["status"] in ("pending", "running")
        assert journal.replay(store) == 1
        assert store.runs.list_runs("j", 5)[0]["status"] == "ok"
        assert not journal.path.exists()
    finally:
        other.close()
        store.close()


def test_cancel_a_run_in_flight_and_one_waiting_for_a_slot(store: SqliteStore) -> None:
    harness = Harness(store, max_concurrency=1)

    async def scenario(h: Harness) -> None:
        h.add_job("a")
        h.add_job("b")
        running = await h.dispatcher.start_run("a")
        waiting = await h.dispatcher.start_run("b")
        await until(lambda: len(h.executor.started) == 1, "the first run")
        assert await h.dispatcher.cancel_run(waiting, "Cancelled by a test") is True
        assert await h.dispatcher.cancel_run(running, "Cancelled by a test") is True
        assert await h.dispatcher.cancel_run(running, "again") is False  # recorded already
        assert await h.dispatcher.cancel_run(12345, "unknown") is False
        a, b = h.runs("a")[0], h.runs("b")[0]
        assert (a["status"], a["error"]) == ("cancelled", "Cancelled by a test")
        assert (b["status"], b["error"]) == ("cancelled", "Cancelled by a test before it started")
        assert len(h.executor.started) == 1  # b never started
        # The slot and the job are free again.
        again = await h.dispatcher.start_run("b")
        await until(lambda: len(h.executor.started) == 2, "b's new run")
        assert h.executor.started[1].run_id == again

    run(harness, scenario)


def test_a_runs_last_lines_are_written_with_its_end_and_readers_get_them(
    harness: Harness,
) -> None:
    async def scenario(h: Harness) -> None:
        h.add_job("a")
        run_id = await h.dispatcher.start_run("a")
        await until(lambda: len(h.executor.started) == 1, "the run")
        process = h.executor.started[0]
        assert process.log is not None
        reader = h.dispatcher.subscribe_log(run_id)
        assert reader is not None
        process.log.feed(LogStream.STDOUT, b"first\nno newline")
        got = await reader.next_chunks()
        assert got is not None and [c.data for c in got] == [b"first\n"]
        process.released.set()
        rest = await reader.next_chunks()
        assert rest is not None and [c.data for c in rest] == [b"no newline\n"]
        assert await reader.next_chunks() is None  # the run's end is stored
        assert h.runs("a")[0]["status"] == "ok"
        stored = [c.data for c in h.store.logs.read_log(run_id)]
        assert stored == [b"first\n", b"no newline\n"]
        assert h.dispatcher.subscribe_log(run_id) is None

    run(harness, scenario)


def test_a_cancel_while_the_result_is_being_written_leaves_the_write_alone(
    harness: Harness, tmp_db: Path
) -> None:
    async def scenario(h: Harness) -> None:
        h.add_job("a")
        run_id = await h.dispatcher.start_run("a")
        await until(lambda: len(h.executor.started) == 1, "the run")
        await h.dispatcher.flush_marks()
        # Another process holds the write lock: the run's end waits to be written.
        other = sqlite3.connect(tmp_db, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            h.executor.started[0].released.set()
            await until(lambda: run_id in h.dispatcher._recording, "the result's write")
            cancelling = asyncio.ensure_future(h.dispatcher.cancel_run(run_id, "too late"))
            await settle()
            assert not cancelling.done()
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert await cancelling is False
        row = h.runs("a")[0]
        assert (row["status"], row["error"]) == ("ok", None)

    run(harness, scenario)


def test_a_manual_run_waiting_for_a_slot_at_shutdown_is_told_the_runner_stops(
    store: SqliteStore,
) -> None:
    async def scenario(h: Harness) -> None:
        h.add_job("busy")
        h.add_job("waits")
        first = asyncio.ensure_future(h.dispatcher.trigger("busy"))
        await until(lambda: len(h.executor.started) == 1, "the first run")
        second = asyncio.ensure_future(h.dispatcher.trigger("waits"))
        await until(lambda: bool(h.runs("waits")), "the waiting run's row")
        stopping = asyncio.ensure_future(h.dispatcher.shutdown(5))
        with pytest.raises(ShuttingDownError):
            await second
        h.executor.started[0].released.set()
        assert (await first).status is RunStatus.OK
        await stopping
        (waited,) = h.runs("waits")
        assert (waited["status"], waited["error"]) == ("error", STOPPED_BEFORE_RUN)
        assert len(h.executor.started) == 1

    run(Harness(store, max_concurrency=1), scenario)


def test_a_deleted_jobs_queued_run_never_starts(store: SqliteStore) -> None:
    async def scenario(h: Harness) -> None:
        h.add_job("q", OverlapPolicy.QUEUE)
        await h.fire("q")
        await until(lambda: len(h.executor.started) == 1, "the first run")
        await h.fire("q")  # queued behind it
        await settle()
        h.dispatcher.cancel_waiting("q")
        h.executor.started[0].released.set()
        await until(lambda: not h.dispatcher.activity["q"].in_flight, "both runs to end")
        assert len(h.executor.started) == 1, "the queued run of a deleted job started"

    run(Harness(store, max_concurrency=2), scenario)


def test_a_fire_cancelled_between_its_prepare_and_its_instant_never_starts(
    harness: Harness,
) -> None:
    async def scenario(h: Harness) -> None:
        h.add_job("a")
        h.add_job("b")
        h.clock.advance(1)
        at = h.clock.now()
        prepared = await h.dispatcher.prepare(["a", "b"], at)
        a_run = next(p.run_id for p in prepared if p.job.id == "a")
        assert a_run is not None
        assert h.runs("a")[0]["status"] == "pending"
        # The ~80 ms before the fire instant: the row exists, no run task holds it yet.
        assert await h.dispatcher.cancel_run(a_run, "Cancelled through the API") is True
        (row,) = h.runs("a")
        assert (row["status"], row["error"]) == (
            "cancelled",
            "Cancelled through the API before it started",
        )
        await h.dispatcher.fire(prepared, at)
        await until(lambda: len(h.executor.started) == 1, "b's run")
        await settle()
        assert [p.job_id for p in h.executor.started] == ["b"]  # a's child never started
        assert h.runs("a") == [row]  # no skip row, nothing else
        assert not h.dispatcher.activity["a"].in_flight
        assert await h.dispatcher.cancel_run(a_run, "again") is False

    run(harness, scenario)


def test_a_cancel_just_after_the_fire_took_the_row_stops_the_run(harness: Harness) -> None:
    async def scenario(h: Harness) -> None:
        h.add_job("a")
        h.clock.advance(1)
        at = h.clock.now()
        prepared = await h.dispatcher.prepare(["a"], at)
        (p,) = prepared
        assert p.run_id is not None
        await h.dispatcher.fire(prepared, at)  # accepted; its task has not run yet
        assert await h.dispatcher.cancel_run(p.run_id, "Cancelled through the API") is True
        (row,) = h.runs("a")
        assert row["status"] == "cancelled"
        assert h.executor.running() == []

    run(harness, scenario)


def test_a_runs_start_is_the_instant_before_its_child_was_spawned(harness: Harness) -> None:
    """The child's output is read and stamped in another thread from the moment it exists;
    a spawn that hands the process back late (a loaded host) must not put the run's
    started_at after its first line."""
    spawn = harness.executor.spawn

    async def slow_spawn(job: Job, run_id: int, log: RunLog | None = None) -> HeldProcess:
        process = await spawn(job, run_id, log)
        harness.clock.advance(0.25)  # the loop comes back to the spawn a while later
        return process

    harness.executor.spawn = slow_spawn  # type: ignore[method-assign]

    async def scenario(h: Harness) -> None:
        h.add_job("s")
        fired = await h.fire("s")
        await until(lambda: h.runs("s") and h.runs("s")[0]["status"] == "running", "the mark")
        assert h.runs("s")[0]["started_at"] == fired

    run(harness, scenario)
