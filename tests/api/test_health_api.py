"""GET /health and GET /stats against the real server on 127.0.0.1."""

from __future__ import annotations

from datetime import timedelta

import httpx
from fake_control import NOW, FakeControl
from live_api import Background, LiveApi, wait_for

from jeeves_runner.models import OverlapPolicy, RunStatus


def test_health(client: httpx.Client, control: FakeControl) -> None:
    control.uptime = 3661.2345
    control.failed_registrations = 2
    response = client.get("/health")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"ok": True, "uptime": 3661.235, "failedRegistrations": 2}
    assert type(response.json()["uptime"]) is float


def test_stats_of_an_empty_runner(client: httpx.Client) -> None:
    assert client.get("/stats").json() == {
        "totalJobs": 0,
        "running": 0,
        "failedRegistrations": 0,
        "okLastHour": 0,
        "errorsLastHour": 0,
    }


def test_stats_counts_the_last_hour(client: httpx.Client, control: FakeControl) -> None:
    for job_id in ("a", "b", "c"):
        control.add_job(job_id)
    control.failed_registrations = 1
    hour = timedelta(hours=1)

    def finished(job_id: str, status: RunStatus, ago: timedelta) -> None:
        end = NOW - ago
        control.add_run(job_id, status, end - timedelta(seconds=5), end)

    finished("a", RunStatus.OK, timedelta(minutes=1))
    finished("b", RunStatus.OK, timedelta(minutes=30))
    finished("a", RunStatus.OK, hour)  # exactly an hour ago: inside the window
    finished("a", RunStatus.ERROR, timedelta(minutes=10))
    finished("b", RunStatus.TIMEOUT, timedelta(minutes=59))  # a timeout is an error too
    finished("c", RunStatus.OK, hour + timedelta(milliseconds=1))  # just outside
    finished("c", RunStatus.ERROR, timedelta(hours=3))
    control.add_skip("c", NOW - timedelta(minutes=2))  # a skipped fire is neither
    control.add_run("c", RunStatus.RUNNING, NOW - timedelta(minutes=2))  # not finished yet

    assert client.get("/stats").json() == {
        "totalJobs": 3,
        "running": 0,
        "failedRegistrations": 1,
        "okLastHour": 3,
        "errorsLastHour": 2,
    }


def test_stats_running_counts_executing_runs(client: httpx.Client, control: FakeControl) -> None:
    # `running` is what the runner says is executing, not rows with status running.
    control.add_job("a")
    control.add_run("a", RunStatus.RUNNING, NOW)
    assert client.get("/stats").json()["running"] == 0


def test_stats_running_counts_each_concurrent_run(
    live_api: LiveApi, client: httpx.Client, control: FakeControl
) -> None:
    control.add_job("par", overlap_policy=OverlapPolicy.ALLOW)
    gate = control.hold("par")
    runs = [Background(live_api.url, "POST", "/jobs/par/run") for _ in range(2)]
    wait_for(lambda: client.get("/stats").json()["running"] == 2, "two runs executing")
    gate.set()
    assert [r.result().status_code for r in runs] == [200, 200]
    assert [r.result().json()["result"]["status"] for r in runs] == ["ok", "ok"]
    assert client.get("/stats").json()["running"] == 0
