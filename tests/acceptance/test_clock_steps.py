"""The scheduler loop when the wall clock is stepped (NTP, an operator): in-process runner,
real children, a clock whose wall time the test moves while monotonic time runs on."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from jeeves_runner.clock import SystemClock
from jeeves_runner.config import Config
from jeeves_runner.execution import event_loop
from jeeves_runner.models import Job, RunStatus, format_instant
from jeeves_runner.runner import Runner

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"

pytestmark = pytest.mark.slow


class SteppableClock(SystemClock):
    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return super().now() + self.offset


async def _poll(predicate: object, timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


def make_runner(tmp_path: Path, clock: SteppableClock) -> Runner:
    config = Config.model_validate({"dbPath": str(tmp_path / "r.sqlite"), "reconcileIntervalMs": 0})
    return Runner(config, clock=clock, serve_api=False)


async def add_tick_job(runner: Runner, clock: SteppableClock) -> None:
    job = Job(
        id="tick", name="tick", schedule="* * * * * *", script=str(SCRIPTS / "fails_quietly.sh")
    )
    runner.sync_store.jobs.add_job(job, format_instant(clock.now()))
    await runner.scheduler.reconcile()


def fired_seconds(runner: Runner) -> list[str]:
    """When each fire started (a `missed` row stands for fires that did not happen)."""
    runs = runner.sync_store.runs.list_runs("tick", 1000)
    return [r["started_at"][:19] for r in runs if r["status"] != "missed"]


def missed_rows(runner: Runner) -> list[int]:
    runs = runner.sync_store.runs.list_runs("tick", 1000, statuses=[RunStatus.MISSED])
    return [int(r["id"]) for r in runs]


def test_wall_clock_stepped_forward_fires_once_for_the_missed_time(tmp_path: Path) -> None:
    clock = SteppableClock()

    async def main() -> list[str]:
        runner = make_runner(tmp_path, clock)
        await runner.start()
        try:
            await add_tick_job(runner, clock)
            await _poll(lambda: len(fired_seconds(runner)) >= 2, 10)
            before = len(fired_seconds(runner))
            clock.offset = timedelta(hours=1)  # an hour of missed seconds
            await _poll(lambda: len(fired_seconds(runner)) >= before + 3, 10)
            missed.extend(missed_rows(runner))
            return fired_seconds(runner)
        finally:
            await runner.stop()

    missed: list[int] = []
    seconds = event_loop.run(main())
    # Not 3,600 runs for the missed seconds: they are one `missed` row (catchup `skip`),
    # and the current second fires, then on time again.
    assert len(missed) == 1
    assert len(seconds) < 12
    assert sum(s.startswith(seconds[0][:13]) for s in seconds) >= 3  # on time after the step


def test_wall_clock_stepped_back_is_logged_and_schedules_go_on_from_the_new_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = SteppableClock()

    async def main() -> tuple[list[str], str]:
        runner = make_runner(tmp_path, clock)
        await runner.start()
        try:
            await add_tick_job(runner, clock)
            await _poll(lambda: len(fired_seconds(runner)) >= 2, 10)
            # A minute back: before, the job stayed silent for that whole minute.
            clock.offset = timedelta(seconds=-60)
            new_time = format_instant(clock.now() + timedelta(seconds=10))[:19]
            # Runs go on at once, at the new (earlier) wall time.
            await _poll(lambda: sum(s < new_time for s in fired_seconds(runner)) >= 2, 5)
            return fired_seconds(runner), new_time
        finally:
            await runner.stop()

    seconds, new_time = event_loop.run(main())
    assert sum(s < new_time for s in seconds) >= 2
    assert "wall clock stepped back" in capsys.readouterr().out
