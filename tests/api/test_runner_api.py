"""Every endpoint against the REAL runner: `Runner.start()` builds the graph and serves the
API on 127.0.0.1 exactly as `jeeves-runner start` does; jobs are real scripts."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from jeeves_runner.models import OverlapPolicy
from live_runner import NEVER_DURING_TESTS, SCRIPTS, LiveRunner

INSTANT = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveRunner]:
    runner = LiveRunner(tmp_path, shutdownGraceMs=10_000).start()
    try:
        yield runner
    finally:
        runner.join()


@pytest.fixture
def http(live: LiveRunner) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=30) as client:
        yield client


def wait_until(predicate: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_health(http: httpx.Client) -> None:
    body = http.get("/health").json()
    assert body["ok"] is True
    assert isinstance(body["uptime"], float | int) and body["uptime"] >= 0
    assert body["failedRegistrations"] == 0


def test_jobs_list_get_and_last_run(live: LiveRunner, http: httpx.Client) -> None:
    live.add_job("hello", "ok_with_result.py", on_failure="C123")
    jobs = http.get("/jobs").json()["jobs"]
    assert [j["id"] for j in jobs] == ["hello"]
    job = jobs[0]
    expected = {
        "id": "hello",
        "name": "Hello",
        "schedule": NEVER_DURING_TESTS,
        "script": str(SCRIPTS / "ok_with_result.py"),
        "type": "script",
        "enabled": 1,
        "timeout_ms": None,
        "overlap_policy": "skip",
        "on_failure": "C123",
        "on_success": None,
        "last_status": None,
        "last_run": None,
    }
    assert {k: job[k] for k in expected} == expected
    assert http.post("/jobs/hello/run").json()["result"]["status"] == "ok"
    job = http.get("/jobs").json()["jobs"][0]
    assert job["last_status"] == "ok"
    (run,) = http.get("/jobs/hello/runs").json()["runs"]
    assert job["last_run"] == run["started_at"]
    assert re.match(INSTANT, job["last_run"])
    detail = http.get("/jobs/hello").json()["job"]
    assert detail["id"] == "hello" and detail["enabled"] == 1
    missing = http.get("/jobs/nope")
    assert (missing.status_code, missing.json()) == (404, {"error": "Job not found"})


def test_manual_runs_results_and_history(live: LiveRunner, http: httpx.Client) -> None:
    live.add_job("ok", "ok_with_result.py")
    live.add_job("bad", "fails.sh")
    ok = http.post("/jobs/ok/run")
    assert ok.status_code == 200
    result = ok.json()["result"]
    assert {k: result[k] for k in ("status", "exit_code")} == {"status": "ok", "exit_code": 0}
    assert isinstance(result["duration_ms"], int)
    assert "hello from ok" in result["stdout"] and result["stderr"] == ""
    bad = http.post("/jobs/bad/run").json()["result"]
    assert (bad["status"], bad["exit_code"], bad["stderr"]) == ("error", 3, "something broke")
    http.post("/jobs/ok/run")
    runs = http.get("/jobs/ok/runs").json()["runs"]
    assert len(runs) == 2 and runs[0]["id"] > runs[1]["id"]
    run = runs[0]
    fields = ["id", "job_id", "started_at", "finished_at", "status", "exit_code", "stdout"]
    fields += ["stderr", "duration_ms"]
    assert all(f in run for f in fields)
    assert run["job_id"] == "ok" and run["trigger"] == "manual" and run["tokens"] == 42
    assert re.match(INSTANT, run["started_at"]) and re.match(INSTANT, run["finished_at"])
    assert len(http.get("/jobs/ok/runs", params={"limit": 1}).json()["runs"]) == 1
    bad_limit = http.get("/jobs/ok/runs", params={"limit": "0"})
    assert bad_limit.status_code == 400
    assert bad_limit.json() == {"error": "limit must be an integer from 1 to 1000"}
    unknown = http.get("/jobs/nope/runs")
    assert (unknown.status_code, unknown.json()) == (404, {"error": "Job not found"})
    stats = http.get("/stats").json()
    assert stats == {
        "totalJobs": 2,
        "running": 0,
        "failedRegistrations": 0,
        "okLastHour": 2,
        "errorsLastHour": 1,
    }


def test_trigger_unknown_job_names_it(http: httpx.Client) -> None:
    response = http.post("/jobs/ghost/run")
    assert (response.status_code, response.json()) == (404, {"error": "Job 'ghost' not found"})


def running(http: httpx.Client, job_id: str) -> bool:
    return any(r["status"] == "running" for r in http.get(f"/jobs/{job_id}/runs").json()["runs"])


@pytest.mark.slow
def test_overlap_policies_for_manual_runs(live: LiveRunner, http: httpx.Client) -> None:
    # Runs of 1.5 s where a request must land while one is in flight, of 1 s for the queue
    # (only the order is checked there): sleeps.sh's 2 s default made this test 8 s long.
    live.add_job("skip", "sleeps.sh", overlap_policy=OverlapPolicy.SKIP, args=("1.5",))
    live.add_job("queue", "sleeps.sh", overlap_policy=OverlapPolicy.QUEUE, args=("1",))
    live.add_job("allow", "sleeps.sh", overlap_policy=OverlapPolicy.ALLOW, args=("1.5",))
    with ThreadPoolExecutor(6) as pool:
        first_skip = pool.submit(http.post, "/jobs/skip/run")
        wait_until(lambda: running(http, "skip"))
        busy = http.post("/jobs/skip/run")
        assert (busy.status_code, busy.json()) == (409, {"error": "Job 'skip' is already running"})
        assert first_skip.result().json()["result"]["status"] == "ok"

        first_queue = pool.submit(http.post, "/jobs/queue/run")
        wait_until(lambda: running(http, "queue"))
        second_queue = pool.submit(http.post, "/jobs/queue/run")
        for queued in (second_queue.result(), first_queue.result()):
            assert queued.status_code == 200
            assert queued.json()["result"]["status"] == "ok"
        runs = sorted(http.get("/jobs/queue/runs").json()["runs"], key=lambda r: r["id"])
        assert runs[1]["started_at"] >= runs[0]["finished_at"]  # waited for the first

        a = pool.submit(http.post, "/jobs/allow/run")
        b = pool.submit(http.post, "/jobs/allow/run")
        wait_until(lambda: http.get("/stats").json()["running"] == 2)
        for allowed in (a.result(), b.result()):
            assert allowed.status_code == 200
            assert allowed.json()["result"]["status"] == "ok"


def test_enable_disable_and_disabled_jobs_still_run_by_hand(
    live: LiveRunner, http: httpx.Client
) -> None:
    live.add_job("j", "ok_with_result.py")
    assert http.post("/jobs/j/disable").json() == {"ok": True}
    assert http.get("/jobs/j").json()["job"]["enabled"] == 0
    assert http.post("/jobs/j/run").json()["result"]["status"] == "ok"
    assert http.post("/jobs/j/enable").json() == {"ok": True}
    assert http.get("/jobs/j").json()["job"]["enabled"] == 1
    for action in ("enable", "disable"):
        response = http.post(f"/jobs/ghost/{action}")
        assert (response.status_code, response.json()) == (404, {"error": "Job not found"})


def test_manual_run_while_shutting_down_is_503(live: LiveRunner, http: httpx.Client) -> None:
    live.add_job("long", "sleeps.sh", overlap_policy=OverlapPolicy.ALLOW)
    with ThreadPoolExecutor(2) as pool:
        in_flight = pool.submit(http.post, "/jobs/long/run")
        wait_until(lambda: running(http, "long"))
        live.begin_stop()
        wait_until(lambda: not live.runner.dispatcher.accepting)
        refused = http.post("/jobs/long/run")
        assert (refused.status_code, refused.json()) == (
            503,
            {"error": "The runner is shutting down"},
        )
        # The run in flight was allowed to finish and answered.
        assert in_flight.result().json()["result"]["status"] == "ok"


def test_errors_are_json_sentences(http: httpx.Client) -> None:
    missing = http.get("/nowhere")
    assert (missing.status_code, missing.json()) == (404, {"error": "No route for GET /nowhere"})
    wrong = http.delete("/jobs")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, POST"
    assert wrong.json() == {"error": "Method DELETE is not allowed on /jobs"}
