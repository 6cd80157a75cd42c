"""The runner with its neighbours: maintenance inside the runner, enable at once, scripts
that cannot start, a shell job using the CLI, session jobs through a stand-in gateway, and
Slack stand-ins that refuse or never answer."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from jeeves_runner.client import RunnerClient
from jeeves_runner.models import Job, JobType, RunResult, RunStatus, RunTrigger
from jeeves_runner.store import SqliteStore
from live_runner import LiveRunner
from stand_ins import HANG, GatewayStandIn, SlackStandIn, gateway_ok

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"
pytestmark = pytest.mark.slow


def wait_until(predicate: Any, timeout: float = 10, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return value


@pytest.fixture
def started() -> Iterator[list[LiveRunner]]:
    """Runners a test starts are stopped after it, whatever happens."""
    runners: list[LiveRunner] = []
    yield runners
    for runner in runners:
        runner.join()


def start(started: list[LiveRunner], folder: Path, **settings: Any) -> LiveRunner:
    runner = LiveRunner(folder, **settings)
    started.append(runner)
    return runner.start()


def test_enable_takes_effect_at_once_without_reconcile(
    tmp_path: Path, started: list[LiveRunner]
) -> None:
    live = start(started, tmp_path, reconcileIntervalMs=0)
    live.add_job("tick", "prints_start_time.sh", schedule="* * * * * *", enabled=False)
    with httpx.Client(base_url=live.url) as http:
        assert http.post("/jobs/tick/enable").json() == {"ok": True}
        wait_until(lambda: http.get("/jobs/tick/runs").json()["runs"], 3, "a run after the enable")


def insert_expired_state(store: SqliteStore, key: str) -> None:
    """A state row whose TTL ran out long ago, as maintenance would find it."""
    with store.db.transaction() as conn:
        conn.execute(
            "INSERT INTO state (namespace, key, value, expires_at, updated_at) "
            "VALUES ('ns', ?, 'x', '2020-01-01T00:00:00.000Z', '2020-01-01T00:00:00.000Z')",
            (key,),
        )


def count_state_rows(db: Path, key: str) -> int:
    other = SqliteStore(db)
    try:
        row = (
            other.db.connection()
            .execute("SELECT count(*) FROM state WHERE key = ?", (key,))
            .fetchone()
        )
        return int(row[0])
    finally:
        other.close()


def test_maintenance_runs_at_start_and_on_its_interval(
    tmp_path: Path, started: list[LiveRunner]
) -> None:
    db = tmp_path / "r.sqlite"
    seed = SqliteStore(db)
    seed.jobs.add_job(
        Job(id="j", name="J", schedule="0 0 1 1 *", script="/x.sh"), "2020-01-01T00:00:00.000Z"
    )
    old = "2020-01-02T00:00:00.000Z"
    for _ in range(2):
        run_id = seed.runs.create_run("j", RunTrigger.SCHEDULE, RunStatus.RUNNING, old)
        seed.runs.finish_run(run_id, RunResult(status=RunStatus.OK, duration_ms=1), old)
    insert_expired_state(seed, "gone-at-start")
    seed.close()

    live = start(started, tmp_path, stateCleanupIntervalMs=1000, runRetentionDays=1)
    store = live.runner.sync_store
    # At start: the older run is pruned (the job's latest real run is kept), state expired.
    assert len(store.runs.list_runs("j", 10)) == 1
    assert count_state_rows(db, "gone-at-start") == 0
    insert_expired_state(store, "later")

    def later_gone() -> bool:
        other = SqliteStore(db)
        try:
            row = (
                other.db.connection()
                .execute("SELECT count(*) FROM state WHERE key = 'later'")
                .fetchone()
            )
            return int(row[0]) == 0
        finally:
            other.close()

    wait_until(later_gone, 5, "the periodic maintenance to remove the expired row")


def test_a_script_that_cannot_start_is_an_error_run(
    tmp_path: Path, started: list[LiveRunner]
) -> None:
    live = start(started, tmp_path)
    missing = tmp_path / "gone.py"
    live.add_job("gone", str(missing))
    with httpx.Client(base_url=live.url) as http:
        response = http.post("/jobs/gone/run")
        assert response.status_code == 200
        result = response.json()["result"]
        assert (result["status"], result["exit_code"]) == ("error", None)
        run = http.get("/jobs/gone/runs").json()["runs"][0]
        assert run["error"] == f"Script not found: {missing}"
        assert http.get("/jobs/gone").json()["job"]["id"] == "gone"
        job = http.get("/jobs").json()["jobs"][0]
        assert job["last_status"] == "error"


def test_a_shell_job_uses_the_cli_of_this_installation(
    tmp_path: Path, started: list[LiveRunner], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The venv's bin folder is not on PATH: the runner must put its own there for the job.
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    live = start(started, tmp_path)
    live.add_job("shell", str(EXAMPLES / "shell-state.sh"))
    with httpx.Client(base_url=live.url, timeout=60) as http:
        result = http.post("/jobs/shell/run").json()["result"]
    assert result["status"] == "ok", result
    with RunnerClient(live.runner.config.db_path) as jr:
        assert jr.get_state("shell-example", "last-run") is not None
        assert jr.count_items("shell-example", "hosts") == 2
        assert [i.payload["host"] for i in jr.dequeue("host-checks", count=5)] == [
            "alpha",
            "beta",
        ]


TOKEN = "gw-token"
DONE = {"role": "assistant", "stopReason": "stop", "content": [{"type": "text", "text": "Done."}]}


def test_a_session_job_runs_through_the_gateway_and_counts_as_running(
    tmp_path: Path, started: list[LiveRunner]
) -> None:
    token_file = tmp_path / "gw.token"
    token_file.write_text(TOKEN)
    with GatewayStandIn(TOKEN) as gateway:
        gateway.on("sessions_history", gateway_ok([]), gateway_ok([]), gateway_ok([DONE]))
        gateway.on(
            "sessions_list",
            gateway_ok([{"sessionKey": GatewayStandIn.SESSION_KEY, "totalTokens": 77}]),
        )
        live = start(
            started,
            tmp_path,
            gateway={"url": gateway.base_url, "tokenPath": str(token_file), "pollIntervalMs": 200},
        )
        live.add_job("digest", "Summarise the day.", type=JobType.SESSION)
        with httpx.Client(base_url=live.url, timeout=30) as http:
            with ThreadPoolExecutor(1) as pool:
                pending = pool.submit(http.post, "/jobs/digest/run")
                wait_until(lambda: http.get("/stats").json()["running"] == 1, 10, "running")
                busy = http.post("/jobs/digest/run")  # overlap skip applies to sessions too
                assert busy.status_code == 409
                assert busy.json() == {"error": "Job 'digest' is already running"}
                result = pending.result().json()["result"]
            assert result["status"] == "ok" and result["stdout"] == "Done."
            run = http.get("/jobs/digest/runs").json()["runs"][0]
            assert (run["tokens"], run["result_meta"]) == (77, GatewayStandIn.SESSION_KEY)
            # A session's answer is its log.
            log = http.get(f"/runs/{run['id']}/log").text
            assert log.split(" ", 1)[1] == "stdout Done.\n"


def test_a_slack_that_never_answers_does_not_delay_the_run_record(
    tmp_path: Path, started: list[LiveRunner]
) -> None:
    token = tmp_path / "slack.token"
    token.write_text("xoxb-test")
    with SlackStandIn() as slack:
        slack.script(HANG)
        live = start(
            started,
            tmp_path,
            notifications={"slackTokenPath": str(token), "slackApiUrl": slack.api_url},
        )
        live.add_job("bad", "fails.sh", on_failure="C-ALERTS")
        with httpx.Client(base_url=live.url, timeout=30) as http:
            began = time.monotonic()
            result = http.post("/jobs/bad/run").json()["result"]
            assert result["status"] == "error"
            assert time.monotonic() - began < 3  # Slack's 10 s timeout is not waited for
            assert http.get("/jobs/bad/runs").json()["runs"][0]["status"] == "error"
        wait_until(lambda: slack.posts, 5, "the notification attempt")
        assert slack.posts[0]["channel"] == "C-ALERTS"
        assert slack.posts[0]["text"] == "⚠️ *Bad* failed (0.0s): something broke"


def test_jobs_that_fail_to_register_are_reported_to_slack_at_start(
    tmp_path: Path, started: list[LiveRunner]
) -> None:
    token = tmp_path / "slack.token"
    token.write_text("xoxb-test")
    db = tmp_path / "r.sqlite"
    seed = SqliteStore(db)
    now = "2026-01-01T00:00:00.000Z"
    seed.jobs.add_job(Job(id="fine", name="Fine", schedule="0 0 1 1 *", script="/x.sh"), now)
    seed.jobs.add_job(Job(id="broken", name="Broken", schedule="61 * * * *", script="/x.sh"), now)
    seed.close()
    with SlackStandIn() as slack:
        live = start(
            started,
            tmp_path,
            notifications={
                "slackTokenPath": str(token),
                "slackApiUrl": slack.api_url,
                "defaultOnFailure": "C-OPS",
            },
        )
        assert live.runner.failed_registrations == 1
        wait_until(lambda: slack.posts, 5, "the start-up message")
        post = slack.posts[0]
        assert post["channel"] == "C-OPS"
        assert "1 of 2" in post["text"] and "broken" in post["text"]
    assert os.path.exists(db)


def test_schedules_are_read_in_the_configured_zone(
    tmp_path: Path, started: list[LiveRunner]
) -> None:
    live = start(started, tmp_path, timezone="Australia/Sydney", reconcileIntervalMs=0)
    live.add_job("nine", "prints_start_time.sh", schedule="0 9 * * *")
    assert live.loop is not None
    asyncio.run_coroutine_threadsafe(live.runner.scheduler.reconcile(), live.loop).result(5)
    due = live.runner.scheduler.fires.next_due()
    assert due is not None
    local = datetime.fromtimestamp(due, ZoneInfo("Australia/Sydney"))
    assert (local.hour, local.minute) == (9, 0)
