"""The runner's start-up, in-process and without the API: runs a dead runner left open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from jeeves_runner.config import Config
from jeeves_runner.execution import event_loop
from jeeves_runner.models import Job, RunResult, RunStatus, RunTrigger, format_instant
from jeeves_runner.runner import Runner
from jeeves_runner.store import SqliteStore


def test_runs_a_dead_runner_left_open_are_closed_as_errors_at_start(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    earlier = format_instant(datetime.now(UTC) - timedelta(minutes=10))
    store = SqliteStore(db)
    try:
        store.jobs.add_job(Job(id="j", name="J", schedule="0 0 1 1 *", script="/x.sh"), earlier)
        running = store.runs.create_run("j", RunTrigger.SCHEDULE, RunStatus.RUNNING, earlier)
        pending = store.runs.create_run("j", RunTrigger.SCHEDULE, RunStatus.PENDING, earlier)
        finished = store.runs.create_run("j", RunTrigger.MANUAL, RunStatus.RUNNING, earlier)
        store.runs.finish_run(finished, RunResult(RunStatus.OK, 5, exit_code=0), earlier)
    finally:
        store.close()

    runner = Runner(Config.model_validate({"dbPath": str(db)}), serve_api=False)
    before_start = format_instant(datetime.now(UTC))

    async def start_and_stop() -> None:
        await runner.start()
        await runner.stop()

    event_loop.run(start_and_stop())

    store = SqliteStore(db)
    try:
        for run_id, error in (
            (running, "The runner stopped during this run"),
            (pending, "The runner stopped before this run started"),  # it never began
        ):
            row = store.runs.get_run(run_id)
            assert row is not None
            assert (row["status"], row["error"]) == ("error", error)
            assert row["finished_at"] >= before_start
        # Closed for good: GET /stats no longer counts anything as running.
        statuses = {r["status"] for r in store.runs.list_runs("j", 10)}
        assert statuses == {"error", "ok"}
        untouched = store.runs.get_run(finished)
        assert untouched is not None
        assert (untouched["status"], untouched["error"], untouched["finished_at"]) == (
            "ok",
            None,
            earlier,
        )
    finally:
        store.close()
