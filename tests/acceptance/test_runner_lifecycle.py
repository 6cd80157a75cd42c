"""The real runner process: firing, overlap, concurrency, crashes, signals, the lock."""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from acceptance.runner_process import RunnerProcess, wait_for
from jeeves_runner.execution.process_groups import group_is_alive
from jeeves_runner.store import SqliteStore

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
SLEEPS = str(SCRIPTS / "sleeps.sh")
IGNORES_TERM = str(SCRIPTS / "ignores_term.sh")

pytestmark = pytest.mark.slow


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[RunnerProcess]:
    proc = RunnerProcess(tmp_path, reconcileIntervalMs=500, shutdownGraceMs=10_000)
    yield proc
    if proc.proc is not None and proc.proc.poll() is None:
        proc.stop(signal.SIGKILL)


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_every_second_job_fires_once_per_second_none_lost_none_doubled(
    runner: RunnerProcess,
) -> None:
    runner.add_job("tick", "* * * * * *", str(SCRIPTS / "prints_start_time.sh"))
    runner.start()
    wait_for(lambda: len(runner.runs("tick")) >= 6, 20, "six runs")
    assert runner.stop() == 0
    runs = sorted(runner.runs("tick"), key=lambda r: r["id"])
    assert all(r["status"] == "ok" for r in runs), runs
    seconds = [instant(r["started_at"]).replace(microsecond=0) for r in runs]
    assert len(set(seconds)) == len(seconds), "a second fired twice"
    gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(seconds)}
    assert gaps == {1.0}, f"a second was lost: {seconds}"
    # Each child started shortly after its whole second.
    for run in runs:
        started = float(run["stdout"].split()[1])
        assert 0 <= started % 1 < 0.5


def test_skip_policy_collapses_skips_into_one_row_per_in_flight_run(
    runner: RunnerProcess,
) -> None:
    runner.add_job("slow", "* * * * * *", SLEEPS, "--overlap", "skip")
    runner.start()
    wait_for(lambda: any(r["status"] == "ok" for r in runner.runs("slow")), 20, "one finished run")
    runner.stop()
    runs = sorted(runner.runs("slow"), key=lambda r: r["id"])
    executed = [r for r in runs if r["status"] != "skipped"]
    skipped = [r for r in runs if r["status"] == "skipped"]
    assert executed and skipped
    first = skipped[0]
    assert first["skipped_count"] >= 1
    assert first["error"] == "the previous run was still in flight (overlap policy skip)"
    # Never more than one skip row per executed run.
    assert len(skipped) <= len(executed)


def test_queue_policy_runs_back_to_back_never_together(runner: RunnerProcess) -> None:
    runner.add_job("q", "* * * * * *", SLEEPS, "--overlap", "queue")
    runner.start()
    wait_for(
        lambda: sum(r["status"] == "ok" for r in runner.runs("q")) >= 2, 30, "two finished runs"
    )
    runner.stop()
    done = sorted(
        (r for r in runner.runs("q") if r["status"] == "ok"), key=lambda r: r["started_at"]
    )
    for a, b in itertools.pairwise(done):
        assert instant(b["started_at"]) >= instant(a["finished_at"])
        # It ran right after the previous one, not at a later whole second.
        assert (instant(b["started_at"]) - instant(a["finished_at"])).total_seconds() < 0.5


def test_allow_policy_runs_concurrently(runner: RunnerProcess) -> None:
    runner.add_job("a", "* * * * * *", SLEEPS, "--overlap", "allow")
    runner.start()

    def started() -> list[dict[str, object]]:
        return [r for r in runner.runs("a") if r["status"] in ("running", "ok")]

    wait_for(lambda: len(started()) >= 3, 20, "three started runs")
    runner.stop()
    runs = started()
    assert all(r["status"] == "ok" for r in runs)
    starts = sorted(instant(str(r["started_at"])) for r in runs)
    finishes = sorted(instant(str(r["finished_at"])) for r in runs)
    # The second run (a second after the first) started before the first one, two seconds
    # long, finished: they overlapped. (The third starts just as the first ends.)
    assert starts[1] < finishes[0]


def test_max_concurrency_one_runs_all_due_jobs_in_fire_order(tmp_path: Path) -> None:
    runner = RunnerProcess(tmp_path, maxConcurrency=1)
    for name in ("first", "second", "third"):
        # Half-second runs: one slot makes them back to back all the same (2 s each took 6 s).
        runner.add_job(name, "*/5 * * * * *", SLEEPS, "--timeout", "60000", "--arg", "0.5")
    runner.start()
    try:
        wait_for(
            lambda: all(
                any(r["status"] == "ok" for r in runner.runs(n))
                for n in ("first", "second", "third")
            ),
            40,
            "all three jobs to finish a run",
        )
    finally:
        runner.stop()
    firsts = {n: min(runner.runs(n), key=lambda r: r["id"]) for n in ("first", "second", "third")}
    order = sorted(firsts, key=lambda n: firsts[n]["started_at"])
    assert order == ["first", "second", "third"]
    a, b, c = (firsts[n] for n in order)
    assert instant(b["started_at"]) >= instant(a["finished_at"])
    assert instant(c["started_at"]) >= instant(b["finished_at"])


def test_kill_9_mid_run_then_restart_closes_the_run_as_error(runner: RunnerProcess) -> None:
    runner.add_job("long", "* * * * * *", SLEEPS)
    runner.start()
    wait_for(lambda: any(r["status"] == "running" for r in runner.runs("long")), 20, "a run")
    runner.stop(signal.SIGKILL)
    runner.cli("list-jobs")  # the database is readable while no runner holds it
    runner.start()
    runner.stop()
    stopped = "The runner stopped during this run"
    closed = [r for r in runner.runs("long") if (r["error"] or "").startswith(stopped)]
    assert closed and all(r["status"] == "error" and r["finished_at"] for r in closed)


def test_kill_9_then_restart_ends_the_groups_the_dead_runner_left(
    runner: RunnerProcess,
) -> None:
    runner.add_job("forever", "0 0 1 1 *", IGNORES_TERM)
    runner.start()
    assert httpx.post(f"{runner.url}/jobs/forever/run?wait=false", timeout=10).status_code == 202
    pgid = wait_for(lambda: recorded_group(runner), 10, "the run's process to be recorded")
    runner.stop(signal.SIGKILL)
    assert group_is_alive(pgid), "the child should outlive a runner killed with -9"
    runner.start()  # ends the old group (TERM is ignored: KILL after the grace)
    assert not group_is_alive(pgid)
    runner.stop()
    (run,) = runner.runs("forever")
    assert run["status"] == "error"
    assert run["error"] == (
        f"The runner stopped during this run; its process group {pgid} was still running, "
        "did not stop within 5 s of SIGTERM and was killed with SIGKILL"
    )


def recorded_group(runner: RunnerProcess) -> int | None:
    store = SqliteStore(runner.db_path)
    try:
        return next((run.pgid for run in store.runs.open_runs() if run.pgid), None)
    finally:
        store.close()


def test_sigterm_lets_the_run_in_flight_finish_and_exits_0(runner: RunnerProcess) -> None:
    runner.add_job("long", "* * * * * *", SLEEPS)
    runner.start()
    wait_for(lambda: any(r["status"] == "running" for r in runner.runs("long")), 20, "a run")
    assert runner.stop() == 0
    runs = [r for r in runner.runs("long") if r["status"] != "skipped"]
    assert runs and all(r["status"] == "ok" for r in runs), runs
    assert all("finished" in r["stdout"] for r in runs)


def test_shutdown_grace_kills_what_is_left(tmp_path: Path) -> None:
    runner = RunnerProcess(tmp_path, shutdownGraceMs=300)
    runner.add_job("hang", "* * * * * *", str(SCRIPTS / "grandchild.sh"))
    runner.start()
    wait_for(lambda: any(r["status"] == "running" for r in runner.runs("hang")), 20, "a run")
    assert runner.stop() == 0
    run = next(r for r in runner.runs("hang") if r["status"] != "skipped")
    assert run["status"] == "error"
    assert run["error"] == "Killed at shutdown after the 300 ms grace period"


def test_a_second_runner_on_the_same_database_is_refused(
    runner: RunnerProcess, tmp_path: Path
) -> None:
    runner.start()
    (tmp_path / "other").mkdir()
    second = RunnerProcess(tmp_path / "other", dbPath=runner.db_path)
    done = second.cli("start")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"error: another runner (pid {runner.proc.pid if runner.proc else 0}) "
        f"is already using {runner.db_path}; stop it first"
    )
    assert "Traceback" not in done.stderr
    assert os.path.exists(runner.db_path)


def test_jobs_added_and_disabled_while_running_take_effect_without_restart(
    runner: RunnerProcess,
) -> None:
    runner.start()
    runner.add_job("late", "* * * * * *", str(SCRIPTS / "prints_start_time.sh"))
    wait_for(lambda: runner.runs("late"), 10, "the job added by the CLI to run")
    assert httpx.post(f"{runner.url}/jobs/late/disable").json() == {"ok": True}
    count = len(runner.runs("late"))
    # Showing that something does NOT happen needs a window of time: two more seconds in
    # which an enabled `* * * * * *` job would have fired twice.
    time.sleep(2.2)
    job = httpx.get(f"{runner.url}/jobs/late").json()["job"]
    assert job["enabled"] == 0
    runner.stop()
    assert len(runner.runs("late")) <= count + 1


def test_invalid_schedule_in_the_database_counts_as_failed_registration(
    runner: RunnerProcess,
) -> None:
    runner.add_job("fine", "0 0 1 1 *", str(SCRIPTS / "prints_start_time.sh"))
    store = SqliteStore(runner.db_path)
    with store.db.transaction() as conn:  # written around the CLI's checks, as by hand
        conn.execute("UPDATE jobs SET schedule = '61 * * * *' WHERE id = 'fine'")
    store.close()
    runner.start()
    assert httpx.get(f"{runner.url}/health").json()["failedRegistrations"] == 1
    assert httpx.get(f"{runner.url}/stats").json()["failedRegistrations"] == 1
    runner.stop()
