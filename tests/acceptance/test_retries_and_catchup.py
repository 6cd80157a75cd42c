"""Issue 13 with real processes: retries (linked by retry_of, delays within bounds, durable
across a kill -9) and catch-up after a stopped runner (one run for `once`, one `missed` row
for the three fires it slept through)."""

from __future__ import annotations

import signal
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from runner_process import RunnerProcess, wait_for

from jeeves_runner.models import format_instant, parse_instant
from jeeves_runner.store import SqliteStore

pytestmark = pytest.mark.slow

# Fails until its third try: a counter kept beside it (the child runs in its folder).
FAILS_TWICE = """#!/bin/sh
n=$(cat count 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" > count
echo "try $n"
[ "$n" -ge 3 ] || { echo "not yet" >&2; exit 3; }
"""
A_WEEK_MS = str(7 * 86_400_000)


def script(folder: Path, text: str) -> Path:
    path = folder / "job.sh"
    path.write_text(text)
    return path


def seconds_from_now(*offsets: int) -> tuple[list[datetime], str]:
    """Instants a few whole seconds ahead, and a 6-field schedule firing at those seconds
    (each minute; the tests end long before the next)."""
    base = datetime.now(UTC).replace(microsecond=0)
    instants = [base + timedelta(seconds=s) for s in offsets]
    return instants, f"{','.join(str(i.second) for i in instants)} * * * * *"


def all_runs(runner: RunnerProcess, job_id: str) -> list[dict[str, Any]]:
    store = SqliteStore(runner.db_path)
    try:
        rows = store.runs.list_runs(job_id, 100)
        detailed = [store.runs.get_run(int(r["id"])) for r in reversed(rows)]
        return [r for r in detailed if r is not None]
    finally:
        store.close()


def ms_between(earlier: str, later: str) -> float:
    return (parse_instant(later) - parse_instant(earlier)).total_seconds() * 1000


def tries(runner: RunnerProcess, job_id: str) -> list[dict[str, Any]]:
    """The runs that executed or wait to (not the skipped fires, not the missed rows)."""
    return [r for r in all_runs(runner, job_id) if r["status"] not in ("skipped", "missed")]


def test_a_job_failing_twice_then_succeeding_is_three_runs_linked_by_retry_of(
    tmp_path: Path,
) -> None:
    # Every second; while the tries go on the job is in flight, so the fires in between are
    # skipped (overlap policy skip) and the chain is the first three runs, however slowly
    # the machine starts the runner.
    runner = RunnerProcess(tmp_path, timezone="UTC")
    runner.add_job("flaky", "* * * * * *", str(script(tmp_path, FAILS_TWICE)),
                   "--retries", "3", "--retry-delay", "400", "--retry-backoff", "2",
                   "--retry-max-delay", "600")  # fmt: skip
    runner.start()
    try:
        wait_for(
            lambda: [r["status"] for r in tries(runner, "flaky")][:3] == ["error", "error", "ok"],
            30,
            "three tries",
        )
    finally:
        runner.stop()
    first, second, third = tries(runner, "flaky")[:3]
    assert (first["trigger"], first["attempt"], first["retry_of"]) == ("schedule", 1, None)
    assert first["scheduled_for"] is not None
    for attempt, run in ((2, second), (3, third)):
        assert (run["trigger"], run["attempt"], run["retry_of"]) == ("retry", attempt, first["id"])
    # Full jitter: each wait is between 0 and its ceiling (400 ms, then 800 capped at 600),
    # counted from the end of the failed try; a try never starts before its time.
    for failed, retry, ceiling in ((first, second, 400), (second, third, 600)):
        assert -50 <= ms_between(failed["finished_at"], retry["scheduled_for"]) <= ceiling
        assert ms_between(retry["scheduled_for"], retry["started_at"]) >= 0
    assert "run will be retried" in runner.log()


def test_a_retry_waiting_when_the_runner_is_killed_runs_once_after_the_restart(
    tmp_path: Path,
) -> None:
    runner = RunnerProcess(tmp_path, timezone="UTC")
    # A week's delay: the retry is certainly still waiting when the runner dies.
    runner.add_job("flaky", "* * * * * *", str(script(tmp_path, FAILS_TWICE)),
                   "--retries", "2", "--retry-delay", A_WEEK_MS, "--retry-backoff", "1",
                   "--retry-max-delay", A_WEEK_MS)  # fmt: skip
    runner.start()
    try:
        (retry,) = wait_for(
            lambda: [r for r in tries(runner, "flaky") if r["trigger"] == "retry"],
            30,
            "a pending retry",
        )
    finally:
        runner.stop(signal.SIGKILL)
    assert (retry["status"], retry["attempt"]) == ("pending", 2)
    # Its time comes while the runner is down (the row is what holds it).
    with sqlite3.connect(runner.db_path) as conn:
        due = format_instant(datetime.now(UTC) + timedelta(seconds=1))
        conn.execute("UPDATE runs SET scheduled_for = ? WHERE id = ?", (due, retry["id"]))
    runner.start()
    try:
        # The second try fails too (the counter says 2): a third is planned a week out. The
        # job stays in flight from the start on, so no fire runs in between.
        wait_for(
            lambda: [r["attempt"] for r in tries(runner, "flaky")] == [1, 2, 3],
            30,
            "the retry to run after the restart, and the next one planned",
        )
    finally:
        runner.stop()
    first, second, third = tries(runner, "flaky")
    assert (first["status"], second["id"], second["status"]) == ("error", retry["id"], "error")
    assert ms_between(due, second["started_at"]) >= 0
    assert (third["status"], third["attempt"], third["retry_of"]) == ("pending", 3, first["id"])
    assert (tmp_path / "count").read_text().strip() == "2"


def test_a_graceful_stop_during_a_retry_wait_leaves_the_retry_pending_and_nothing_running(
    tmp_path: Path,
) -> None:
    """SIGTERM while a retry waits for its time: the runner exits cleanly, no row is left
    `running`, and the retry is not closed as never started — it stays `pending` for the
    next start (which runs it at its time: the kill -9 test above shows that part)."""
    runner = RunnerProcess(tmp_path, timezone="UTC")
    runner.add_job("flaky", "* * * * * *", str(script(tmp_path, FAILS_TWICE)),
                   "--retries", "2", "--retry-delay", A_WEEK_MS, "--retry-backoff", "1",
                   "--retry-max-delay", A_WEEK_MS)  # fmt: skip
    runner.start()
    try:
        (retry,) = wait_for(
            lambda: [r for r in tries(runner, "flaky") if r["trigger"] == "retry"],
            30,
            "a pending retry",
        )
    finally:
        code = runner.stop()
    assert code == 0
    rows = all_runs(runner, "flaky")
    assert [r for r in rows if r["status"] == "running"] == []
    (still,) = [r for r in rows if r["id"] == retry["id"]]
    assert (still["status"], still["attempt"], still["error"]) == ("pending", 2, None)
    store = SqliteStore(runner.db_path)
    try:
        (waiting,) = store.runs.pending_retries()
    finally:
        store.close()
    assert waiting.run_id == retry["id"]
    # The failed try's child is long gone: its run is recorded with its exit code.
    (first,) = [r for r in rows if r["id"] == retry["retry_of"]]
    assert (first["status"], first["exit_code"]) == ("error", 3)


def test_a_runner_stopped_across_three_fires_catches_up_once_and_records_them(
    tmp_path: Path,
) -> None:
    runner = RunnerProcess(tmp_path, timezone="UTC").start()
    # Through the API, which schedules the job before it answers (the CLI's start-up would
    # eat into the seconds on a loaded machine).
    (before, *missed), schedule = seconds_from_now(2, 8, 9, 10)
    body = {"id": "report", "name": "report", "schedule": schedule, "command": ["/bin/true"]}
    added = httpx.post(f"{runner.url}/jobs", json={**body, "catchup": "once"}, timeout=30)
    assert added.status_code == 201, added.text
    wait_for(
        lambda: [r["status"] for r in all_runs(runner, "report")] == ["ok"], 10, "the first fire"
    )
    assert runner.stop() == 0
    assert datetime.now(UTC) < missed[0], "the runner took too long to stop"
    wait_for(lambda: datetime.now(UTC) > missed[-1] + timedelta(seconds=0.3), 10, "the fires")
    runner.start()
    try:
        wait_for(lambda: len(all_runs(runner, "report")) == 3, 10, "the catch-up")
        wait_for(lambda: all_runs(runner, "report")[-1]["status"] == "ok", 10, "the catch-up's end")
    finally:
        runner.stop()
    fired, gap, caught_up = all_runs(runner, "report")
    assert (fired["status"], fired["scheduled_for"]) == ("ok", format_instant(before))
    assert (gap["status"], gap["missed_count"]) == ("missed", 3)
    assert (gap["missed_first"], gap["missed_last"]) == tuple(
        format_instant(m) for m in (missed[0], missed[-1])
    )
    assert "the runner was not running" in gap["error"]
    assert (caught_up["trigger"], caught_up["scheduled_for"]) == (
        "schedule",
        format_instant(missed[-1]),
    )
    assert runner.log().count("scheduled fires missed") == 1


def test_a_waiting_retry_holds_the_job_in_flight_and_a_cancel_of_the_failed_try_ends_it(
    tmp_path: Path,
) -> None:
    runner = RunnerProcess(tmp_path, timezone="UTC").start()
    try:
        runner.add_job("flaky", "* * * * * *", str(script(tmp_path, FAILS_TWICE)),
                       "--retries", "2", "--retry-delay", A_WEEK_MS, "--retry-backoff", "1",
                       "--retry-max-delay", A_WEEK_MS)  # fmt: skip
        wait_for(
            lambda: any(r["status"] == "skipped" for r in all_runs(runner, "flaky")),
            10,
            "a fire skipped while the retry waits (overlap policy skip)",
        )
        first, retry = [r for r in all_runs(runner, "flaky") if r["status"] != "skipped"][:2]
        assert (first["status"], retry["status"], retry["retry_of"]) == (
            "error",
            "pending",
            first["id"],
        )
        (skip,) = [r for r in all_runs(runner, "flaky") if r["status"] == "skipped"]
        assert "still in flight" in skip["error"]
        cancelled = httpx.post(f"{runner.url}/runs/{first['id']}/cancel", timeout=30)
        assert cancelled.status_code == 200, cancelled.text
        body = cancelled.json()["run"]
        assert (body["id"], body["status"]) == (retry["id"], "cancelled")
        assert "before it started" in body["error"]
        # The job is free again: the next fires run (the second try of the counter).
        wait_for(
            lambda: any(
                r["status"] == "error" and r["id"] > retry["id"] for r in all_runs(runner, "flaky")
            ),
            10,
            "a fire after the cancel",
        )
        again = httpx.post(f"{runner.url}/runs/{first['id']}/cancel", timeout=30)
        assert again.status_code == 409
    finally:
        runner.stop()
