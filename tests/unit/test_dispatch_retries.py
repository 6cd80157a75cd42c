"""The dispatcher's retries over a real store, with a stand-in executor whose tries fail as
the test says: tries linked by retry_of, the notifier told the final outcome only, a waiting
retry holding its job in flight and left `pending` by a stop."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jeeves_runner.clock import FakeClock
from jeeves_runner.execution.dispatch import RunDispatcher
from jeeves_runner.execution.run_log import RunLog
from jeeves_runner.models import Job, RunResult, RunStatus, format_instant
from jeeves_runner.store import SqliteStore
from jeeves_runner.store.gateway import StoreGateway

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


class Ended:
    pid = 4_194_305  # past Linux's largest pid: nothing to signal

    def __init__(self, result: RunResult) -> None:
        self.result = result

    async def wait(self) -> RunResult:
        return self.result


class ScriptedExecutor:
    """Each spawn ends at once with the next result of the script."""

    def __init__(self, results: list[RunResult]) -> None:
        self.results = results

    async def spawn(self, job: Job, run_id: int, log: RunLog | None = None) -> Ended:
        return Ended(self.results.pop(0))


class Notes:
    def __init__(self) -> None:
        self.outcomes: list[tuple[str, RunStatus, int | None]] = []

    def notify_run_later(self, job: Job, result: RunResult, run_id: int | None = None) -> None:
        self.outcomes.append((job.id, result.status, run_id))

    def run_late(self, job: Job, run_id: int, scheduled_for: str, started_at: str) -> None: ...

    def run_overdue(self, job: Job, run_id: int, started_at: str, elapsed_ms: int) -> None: ...

    def runs_missed(self, job: Job, run_id: int, count: int, first: str, last: str) -> None: ...


FAILED = RunResult(RunStatus.ERROR, 5, exit_code=3, error="Exit code 3")
OK = RunResult(RunStatus.OK, 5, exit_code=0)


def harness(tmp_path: Path, results: list[RunResult], **policies: object) -> tuple[Any, ...]:
    store = SqliteStore(tmp_path / "r.sqlite")
    job = Job(id="j", name="j", schedule="* * * * * *", script="/x.sh", **policies)  # type: ignore[arg-type]
    store.jobs.add_job(job, format_instant(START))
    notes = Notes()
    dispatcher = RunDispatcher(
        store=StoreGateway(store),
        executor=ScriptedExecutor(results),  # type: ignore[arg-type]
        sessions=None,
        notifier=notes,
        clock=FakeClock(START),
        max_concurrency=2,
    )
    dispatcher.random = lambda: 0.5
    return store, dispatcher, notes


async def fire(dispatcher: RunDispatcher, at: datetime) -> None:
    await dispatcher.fire(await dispatcher.prepare(["j"], at), at)


async def settle(dispatcher: RunDispatcher) -> None:
    for _ in range(200):
        await asyncio.sleep(0.005)
        if not [t for t in dispatcher._tasks if not t.done()]:
            return


def test_tries_are_linked_and_only_the_final_outcome_is_told(tmp_path: Path) -> None:
    store, dispatcher, notes = harness(tmp_path, [FAILED, FAILED, OK], retries=2, retry_delay_ms=0)

    async def main() -> None:
        await fire(dispatcher, START)
        await settle(dispatcher)

    asyncio.run(main())
    runs = [store.runs.get_run(int(r["id"])) for r in reversed(store.runs.list_runs("j", 10))]
    assert [(r["status"], r["trigger"], r["attempt"]) for r in runs if r] == [
        ("error", "schedule", 1),
        ("error", "retry", 2),
        ("ok", "retry", 3),
    ]
    first = runs[0]
    assert first is not None
    assert all(r is not None and r["retry_of"] == first["id"] for r in runs[1:])
    assert notes.outcomes == [("j", RunStatus.OK, runs[2]["id"] if runs[2] else None)]


def test_the_last_failure_is_told_when_the_tries_run_out(tmp_path: Path) -> None:
    store, dispatcher, notes = harness(tmp_path, [FAILED, FAILED], retries=1, retry_delay_ms=0)

    async def main() -> None:
        await fire(dispatcher, START)
        await settle(dispatcher)

    asyncio.run(main())
    assert [status for _, status, _ in notes.outcomes] == [RunStatus.ERROR]
    assert len(store.runs.list_runs("j", 10)) == 2


def test_a_waiting_retry_holds_the_job_and_a_stop_leaves_it_pending(tmp_path: Path) -> None:
    store, dispatcher, notes = harness(tmp_path, [FAILED, OK], retries=1, retry_delay_ms=60_000)

    async def main() -> None:
        await fire(dispatcher, START)
        for _ in range(100):
            await asyncio.sleep(0.005)
            if store.runs.pending_retries():
                break
        # The next second's fire finds the job in flight (overlap policy skip).
        await fire(dispatcher, datetime(2026, 3, 2, 12, 0, 1, tzinfo=UTC))
        await dispatcher.shutdown(0.1)

    asyncio.run(main())
    (retry,) = store.runs.pending_retries()
    assert (retry.attempt, retry.scheduled_for) == (2, "2026-03-02T12:00:30.000Z")  # 0.5 x 60 s
    statuses = sorted(r["status"] for r in store.runs.list_runs("j", 10))
    assert statuses == ["error", "pending", "skipped"]
    assert notes.outcomes == []
