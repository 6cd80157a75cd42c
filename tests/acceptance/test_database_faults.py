"""The real runner while its database is unavailable: another process holds SQLite's write
lock, the file is damaged. Timers keep their schedule, /health answers from memory, nothing
is lost and nothing answers 500."""

from __future__ import annotations

import errno
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from runner_process import RunnerProcess, wait_for

from jeeves_runner.models import parse_instant

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
SLEEPS = str(SCRIPTS / "sleeps.sh")

pytestmark = pytest.mark.slow

LOCK_HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[RunnerProcess]:
    proc = RunnerProcess(tmp_path, reconcileIntervalMs=0, maxConcurrency=8)
    try:
        yield proc
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.stop()


def hold_write_lock(db: str, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, db, str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    holder.stdout.close()
    return holder


def fires_recorded(runs: list[dict[str, Any]]) -> int:
    """Fires a job's rows stand for: a collapsed skip row counts each skipped fire."""
    return sum(int(r["skipped_count"] or 1) if r["status"] == "skipped" else 1 for r in runs)


def test_a_write_lock_held_by_another_process_loses_nothing(
    runner: RunnerProcess, request: pytest.FixtureRequest
) -> None:
    for job_id in ("a", "b", "c"):
        runner.add_job(job_id, "* * * * * *", str(SCRIPTS / "fails_quietly.sh"))
    runner.add_job("manual", "0 0 1 1 *", SLEEPS)
    runner.start()
    wait_for(lambda: all(runner.runs(j) for j in "abc"), 10, "a first run of each job")

    http = httpx.Client(base_url=runner.url, timeout=60)
    request.addfinalizer(http.close)
    manual: dict[str, Any] = {}

    def trigger() -> None:
        response = http.post("/jobs/manual/run")
        manual["status_code"] = response.status_code
        manual["body"] = response.json()
        manual["answered"] = time.monotonic()

    # A two-second manual run, started just before the lock: it ends while the lock is held.
    thread = threading.Thread(target=trigger)
    thread.start()
    wait_for(lambda: runner.runs("manual"), 10, "the manual run's row")
    lock_seconds = 15.0
    holder = hold_write_lock(runner.db_path, lock_seconds)
    locked_at = time.monotonic()

    statuses: list[int] = []
    health: list[tuple[float, int, dict[str, Any]]] = []
    while time.monotonic() - locked_at < lock_seconds - 1:
        began = time.monotonic()
        response = http.get("/health")
        health.append((time.monotonic() - began, response.status_code, response.json()))
        statuses.append(http.get("/jobs").status_code)
        time.sleep(0.1)
    disable = http.post("/jobs/a/disable")  # a write: refused while the lock holds
    assert holder.wait(30) == 0
    unlocked_at = time.monotonic()
    thread.join(60)

    # /health answered from memory all along: never stuck behind the lock.
    assert max(seconds for seconds, _, _ in health) < 1.0
    late = [body for _, code, body in health if code == 503]
    assert late, "health never reported the waiting writes"
    assert late[-1]["ok"] is False
    assert "lock" in late[-1]["database"]
    assert set(statuses) == {200}, "a read failed during the lock"
    assert disable.status_code in (200, 503)
    if disable.status_code == 503:
        assert disable.json() == {"error": "The database is busy; try again"}

    # The client of the manual run was told the stored result, after the lock let it be stored.
    assert manual["status_code"] == 200
    assert manual["body"]["result"]["status"] == "ok"
    assert manual["answered"] >= unlocked_at - 0.5
    (stored,) = runner.runs("manual")
    assert stored["status"] == "ok"

    # Let the fires held up by the lock be written, then check every second has its row.
    wait_for(lambda: http.get("/health").status_code == 200, 30, "health to recover")
    time.sleep(1.5)
    runner.stop()
    for job_id in "bc":
        runs = runner.runs(job_id)
        assert all(r["status"] not in ("pending", "running") for r in runs)
        instants = [parse_instant(r["started_at"]) for r in runs]
        lasts = [parse_instant(r["last_skipped_at"] or r["started_at"]) for r in runs]
        span = round((max(lasts) - min(instants)).total_seconds()) + 1
        assert fires_recorded(runs) == span, f"{job_id}: fires lost or doubled"
        # Fires held up by the lock past the job's next fire are skips that say why.
        reasons = {r["error"] for r in runs if r["status"] == "skipped"}
        assert any("database could not be written" in (r or "") for r in reasons)
    assert "Internal error" not in runner.log()


def test_a_damaged_database_is_refused_at_start(tmp_path: Path) -> None:
    runner = RunnerProcess(tmp_path)
    runner.add_job("a", "* * * * *", SLEEPS)
    db = Path(runner.db_path)
    data = bytearray(db.read_bytes())
    # Scribble over the second page (the jobs table's B-tree): the header stays valid, so
    # SQLite opens the file, and only an integrity check finds the damage.
    page = 4096
    data[page + 8 : page + 200] = b"\xff" * 192
    db.write_bytes(bytes(data))
    done = subprocess.run(
        [sys.executable, "-m", "jeeves_runner", "start", "-c", str(runner.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: ")
    assert str(db) in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (as root, where mounting is permitted); the test fills it."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(folder: Path) -> Path:
    """Write until the disk is full. Unbuffered: a buffered file would keep the bytes that
    did not fit and raise ENOSPC again when closed, outside the loop."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def test_a_full_disk_answers_503_loses_no_committed_row_and_resumes(
    tmp_path: Path, small_disk: Path, request: pytest.FixtureRequest
) -> None:
    runner = RunnerProcess(
        tmp_path, dbPath=str(small_disk / "runner.sqlite"), reconcileIntervalMs=0
    )
    request.addfinalizer(runner.kill)
    for job_id in ("a", "b"):
        runner.add_job(job_id, "* * * * * *", str(SCRIPTS / "fails_quietly.sh"))
    runner.start()
    wait_for(lambda: all(len(runner.runs(j)) >= 2 for j in "ab"), 10, "runs before the fill")
    before = {r["id"] for j in "ab" for r in runner.runs(j) if r["status"] == "error"}
    http = httpx.Client(base_url=runner.url, timeout=30)
    request.addfinalizer(http.close)
    filler = fill(small_disk)
    codes: set[int] = set()
    full: list[dict[str, Any]] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        health = http.get("/health")
        if health.status_code == 503:
            full.append(health.json())
        codes |= {health.status_code, http.get("/jobs").status_code}
        time.sleep(0.1)
    codes.add(http.post("/jobs/a/disable").status_code)
    assert 500 not in codes
    assert full, "health never said the disk was full"
    assert "full" in full[-1]["database"]
    filler.unlink()
    wait_for(lambda: http.get("/health").status_code == 200, 30, "the runner to resume")
    wait_for(
        lambda: any(r["id"] > max(before) and r["status"] == "error" for r in runner.runs("b")),
        10,
        "a run after the disk had room again",
    )
    assert runner.stop() == 0
    after = {r["id"] for j in "ab" for r in runner.runs(j)}
    assert before <= after, "a committed row was lost"
    assert "Internal error" not in runner.log()


def test_health_turns_ok_once_the_disk_has_room_even_when_nothing_writes(
    tmp_path: Path, small_disk: Path, request: pytest.FixtureRequest
) -> None:
    # A quiet runner: no job fires, so no write of its own would find out the disk has room.
    runner = RunnerProcess(
        tmp_path, dbPath=str(small_disk / "runner.sqlite"), reconcileIntervalMs=0
    )
    request.addfinalizer(runner.kill)
    runner.add_job("yearly", "0 0 1 1 *", SLEEPS)
    runner.start()
    http = httpx.Client(base_url=runner.url, timeout=30)
    request.addfinalizer(http.close)
    filler = fill(small_disk)
    # Enough rows that the write needs new pages: refused with the disk full.
    refused = [http.post("/jobs/yearly/disable").status_code for _ in range(3)]
    assert 503 in refused and 500 not in refused
    health = http.get("/health")
    assert health.status_code == 503
    assert "full" in health.json()["database"]
    filler.unlink()
    wait_for(lambda: http.get("/health").status_code == 200, 10, "health to clear by itself")
    assert http.get("/health").json()["ok"] is True
    assert runner.stop() == 0


def test_a_stop_while_another_process_holds_the_write_lock_leaves_no_run_open(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    runner = RunnerProcess(tmp_path, reconcileIntervalMs=0, shutdownGraceMs=500)
    request.addfinalizer(runner.kill)
    long_script = tmp_path / "long.sh"
    long_script.write_text("#!/bin/sh\necho started\nexec sleep 60\n")
    long_script.chmod(0o755)
    runner.add_job("long", "0 0 1 1 *", str(long_script))
    runner.add_job("tick", "* * * * * *", str(SCRIPTS / "fails_quietly.sh"))
    runner.start()
    with httpx.Client(base_url=runner.url, timeout=10) as http:
        run_id = http.post("/jobs/long/run?wait=false").json()["run_id"]
        wait_for(
            lambda: http.get(f"/runs/{run_id}").json()["run"]["status"] == "running",
            10,
            "the long run",
        )
    wait_for(lambda: runner.runs("tick"), 10, "a tick")
    holder = hold_write_lock(runner.db_path, 5)
    # Writes queued behind the lock (marks, log chunks, the tick's fires), then the stop:
    # the long run is killed after the grace and its end cannot be written.
    time.sleep(1.0)
    assert runner.proc is not None
    stopped_at = time.monotonic()
    runner.proc.send_signal(signal.SIGTERM)
    code = runner.proc.wait(30)
    took = time.monotonic() - stopped_at
    assert holder.wait(30) == 0  # the lock is released
    assert code == 0, runner.log()
    # It may wait for the lock (a queued write waits up to the busy timeout), not longer.
    assert took < 20.0, f"the stop took {took:.1f} s"
    journal = Path(f"{runner.db_path}.unrecorded.jsonl")
    open_rows = [
        r for j in ("long", "tick") for r in runner.runs(j) if r["status"] in ("pending", "running")
    ]
    if open_rows:
        # Every result the database refused until the exit was kept for the next start; a
        # row still `pending` is a fire whose child never started (its discard was refused),
        # which the next start closes as such.
        kept = {json.loads(line)["run_id"] for line in journal.read_text().splitlines()}
        running = {r["id"] for r in open_rows if r["status"] == "running"}
        assert running <= kept, [(r["id"], r["job_id"], r["status"]) for r in open_rows]
        runner.start()
        assert runner.stop() == 0
    for job_id in ("long", "tick"):
        assert all(r["status"] not in ("pending", "running") for r in runner.runs(job_id))
    long_row = next(r for r in runner.runs("long") if r["id"] == run_id)
    assert long_row["status"] == "error"
    assert long_row["error"] == "Killed at shutdown after the 500 ms grace period"
    assert "started" in long_row["stdout"]
    assert not journal.exists()
    assert "Traceback" not in runner.log()
