"""Job edits against the real runner in-process (tests/live_runner.py): an API edit is in the
scheduler before the 200, a deleted job stops firing, a forced delete stops a real child."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from live_runner import SCRIPTS, LiveRunner

pytestmark = pytest.mark.slow


def wait_until(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return value


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveRunner]:
    # No periodic reconcile: what happens below happens because of the edit itself.
    runner = LiveRunner(tmp_path, reconcileIntervalMs=0).start()
    yield runner
    runner.join()


def test_an_api_edit_is_in_the_scheduler_when_the_api_answers(live: LiveRunner) -> None:
    live.add_job("tick", "prints_start_time.sh")  # a schedule that does not fire in tests
    with httpx.Client(base_url=live.url) as http:
        live_watch_settled(live)
        response = http.patch("/jobs/tick", json={"schedule": "* * * * * *"})
        assert response.status_code == 200
        # The job's next fire, counting one the loop has taken up and is preparing (the
        # heap already holds the one after it for the ~80 ms before the instant).
        due = live.runner.scheduler.fires.next_fire("tick")
        assert due is not None and due - time.time() <= 1.0
        wait_until(lambda: http.get("/jobs/tick/runs").json()["runs"], 3, "a run after the edit")
        assert http.delete("/jobs/tick?force=true").status_code == 200
        assert "tick" not in live.runner.scheduler.fires
        assert live.runner.scheduler.fires.next_due() is None


def live_watch_settled(live: LiveRunner) -> None:
    # A job added behind the runner's back is picked up by the watch within its interval.
    wait_until(lambda: "tick" in live.runner.scheduler.fires, 3, "the watch to see the job")


def test_a_forced_delete_stops_the_running_child(live: LiveRunner) -> None:
    live.add_job("hang", str(SCRIPTS / "grandchild.sh"))
    with httpx.Client(base_url=live.url, timeout=30) as http, ThreadPoolExecutor(1) as pool:
        run = pool.submit(http.post, "/jobs/hang/run")
        wait_until(lambda: live.runner.running_count == 1, 10, "the run to start")
        refused = http.delete("/jobs/hang")
        assert refused.status_code == 409
        assert refused.json() == {"error": "Job 'hang' has a run in flight"}
        assert http.delete("/jobs/hang?force=true").json() == {"ok": True}
        result = run.result(30).json()["result"]
        assert result["status"] == "error"
        assert result["error"] == "The job was deleted during this run"
        assert http.get("/jobs/hang").status_code == 404
        assert live.runner.running_count == 0


def test_post_jobs_schedules_at_once(live: LiveRunner) -> None:
    body = {
        "id": "new",
        "name": "New",
        "schedule": "* * * * * *",
        "script": str(SCRIPTS / "prints_start_time.sh"),
    }
    with httpx.Client(base_url=live.url) as http:
        assert http.post("/jobs", json=body).status_code == 201
        assert "new" in live.runner.scheduler.fires
        assert http.post("/jobs", json=body).json() == {"error": "Job 'new' already exists"}
        wait_until(lambda: http.get("/jobs/new/runs").json()["runs"], 3, "a run of the new job")


def test_a_real_child_sees_its_args_env_cwd_and_command(live: LiveRunner, tmp_path: Path) -> None:
    script = tmp_path / "scripts" / "show.sh"
    script.parent.mkdir()
    script.write_text(
        '#!/bin/sh\necho "args=$*"\necho "greeting=$GREETING"\necho "job=$JR_JOB_ID"\npwd\n'
    )
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    base = {"name": "Show", "schedule": "0 0 1 1 *"}
    with httpx.Client(base_url=live.url, timeout=30) as http:
        env = {"GREETING": "hello", "JR_JOB_ID": "spoofed"}
        body = {**base, "id": "show", "script": str(script), "args": ["a b", "c"], "env": env}
        created = http.post("/jobs", json=body)
        assert created.status_code == 201, created.text
        out = http.post("/jobs/show/run").json()["result"]["stdout"]
        # JR_* come after the job's env: a job cannot spoof them. The default folder is the
        # script's own.
        assert out.splitlines() == ["args=a b c", "greeting=hello", "job=show", str(script.parent)]
        http.patch("/jobs/show", json={"cwd": str(elsewhere)})
        out = http.post("/jobs/show/run").json()["result"]["stdout"]
        assert out.splitlines()[-1] == str(elsewhere)
        body = {
            **base,
            "id": "cmd",
            "command": ["printenv", "GREETING"],
            "env": {"GREETING": "x y"},
        }
        assert http.post("/jobs", json=body).status_code == 201
        result = http.post("/jobs/cmd/run").json()["result"]
        assert (result["status"], result["stdout"].splitlines()) == ("ok", ["x y"])


def test_a_job_fires_in_its_own_zone(live: LiveRunner) -> None:
    # Every second, but only during this hour and the next *in Tokyo*; the runner's zone (UTC
    # in tests, whole hours away from Tokyo) never has those hours now.
    tokyo = datetime.now(ZoneInfo("Asia/Tokyo"))
    hours = f"{tokyo.hour},{(tokyo.hour + 1) % 24}"
    body = {
        "id": "tokyo",
        "name": "Tokyo",
        "schedule": f"* * {hours} * * *",
        "timezone": "Asia/Tokyo",
        "script": str(SCRIPTS / "prints_start_time.sh"),
    }
    with httpx.Client(base_url=live.url) as http:
        assert http.post("/jobs", json=body).status_code == 201
        wait_until(lambda: http.get("/jobs/tokyo/runs").json()["runs"], 3, "a fire in Tokyo time")
        http.patch("/jobs/tokyo", json={"timezone": None})
        assert "tokyo" not in live.runner.scheduler.fires or (
            (live.runner.scheduler.fires.next_due() or 0) - time.time() > 60
        )


def test_the_runner_applies_its_jobs_folder_at_start_and_on_change(tmp_path: Path) -> None:
    folder = tmp_path / "jobs"
    folder.mkdir()
    script = SCRIPTS / "prints_start_time.sh"
    (folder / "early.toml").write_text(f'schedule = "0 0 1 1 *"\nscript = "{script}"\n')
    runner = LiveRunner(tmp_path, jobsDir=str(folder), reconcileIntervalMs=0).start()
    try:
        assert "early" in runner.runner.scheduler.fires  # applied before the first reconcile
        with httpx.Client(base_url=runner.url) as http:
            (folder / "tick.toml").write_text(f'schedule = "* * * * * *"\nscript = "{script}"\n')
            wait_until(lambda: "tick" in runner.runner.scheduler.fires, 2, "the new file's job")
            wait_until(lambda: http.get("/jobs/tick/runs").json()["runs"], 3, "a run of it")
            # A broken edit leaves the job as it was; the file stays the truth for edits.
            (folder / "tick.toml").write_text('schedule = "* * * *\n')
            applied = runner.runner.job_folder
            assert applied is not None
            before = applied.applied
            wait_until(lambda: applied.applied > before, 2, "the broken file to be seen")
            job = http.get("/jobs/tick").json()["job"]
            assert job["schedule"] == "* * * * * *"
            refused = http.patch("/jobs/tick", json={"name": "x"})
            assert refused.json() == {"error": f"Job 'tick' is managed by {folder / 'tick.toml'}"}
            # Without jobsPrune a job whose file goes stays.
            (folder / "early.toml").unlink()
            before = applied.applied
            wait_until(lambda: applied.applied > before, 2, "the removal to be seen")
            assert http.get("/jobs/early").status_code == 200
    finally:
        runner.join()


def test_the_watch_reads_nothing_while_nothing_is_committed(live: LiveRunner) -> None:
    watch = live.runner.schedule_watch
    wait_until(lambda: watch.looks >= 2, 3, "the watch to look")
    looks, checks = watch.looks, watch.checks
    wait_until(lambda: watch.looks >= looks + 3, 3, "three more looks")
    assert watch.checks == checks  # idle: only the data version was asked
    live.add_job("other", "prints_start_time.sh")  # a commit by another connection
    wait_until(lambda: watch.checks > checks, 3, "a fingerprint check after the commit")
    wait_until(lambda: "other" in live.runner.scheduler.fires, 3, "the job to be scheduled")
