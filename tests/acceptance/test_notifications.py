"""Notifications from the real runner (in-process, real child processes, the real HTTP API)
to stand-in Slack and webhook servers on 127.0.0.1: alerts on change, signed webhooks, a
receiver that never answers, and webhooks read again on SIGHUP."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from live_runner import LiveRunner
from stand_ins import HANG, SlackStandIn, WebhookStandIn

pytestmark = pytest.mark.slow
SECRET = "a shared secret"


def wait_until(predicate: Any, timeout: float = 10, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return value


@pytest.fixture
def started() -> Iterator[list[LiveRunner]]:
    runners: list[LiveRunner] = []
    yield runners
    for runner in runners:
        runner.join()


def start(started: list[LiveRunner], folder: Path, **settings: Any) -> LiveRunner:
    runner = LiveRunner(folder, **settings)
    started.append(runner)
    return runner.start()


def notifications(slack: SlackStandIn, folder: Path, **extra: Any) -> dict[str, Any]:
    token = folder / "slack.token"
    token.write_text("xoxb-test")
    return {"slackTokenPath": str(token), "slackApiUrl": slack.api_url, **extra}


def run_now(http: httpx.Client, job_id: str) -> dict[str, Any]:
    reply = http.post(f"/jobs/{job_id}/run")
    assert reply.status_code == 200, reply.text
    return dict(reply.json()["result"])


def test_failing_failing_ok_under_change_posts_exactly_a_failure_and_a_recovery(
    tmp_path: Path, started: list[LiveRunner]
) -> None:
    with SlackStandIn() as slack, WebhookStandIn() as receiver:
        hook = {
            "name": "ops",
            "url": receiver.url,
            "events": ["run.failed", "run.recovered", "run.succeeded"],
            "secret": SECRET,
        }
        live = start(
            started, tmp_path, notifications=notifications(slack, tmp_path, webhooks=[hook])
        )
        live.add_job(
            "flaky",
            "fails_twice.sh",
            name="Flaky",
            on_failure="C-OPS",
            env={"COUNT_FILE": str(tmp_path / "count")},
        )  # notify: change, the default
        with httpx.Client(base_url=live.url, timeout=30) as http:
            statuses = [run_now(http, "flaky")["status"] for _ in range(3)]
            run_ids = [r["id"] for r in http.get("/jobs/flaky/runs").json()["runs"]]
        assert statuses == ["error", "error", "ok"]
        first, _, third = sorted(run_ids)
        wait_until(lambda: len(receiver.events) >= 2 and len(slack.posts) >= 2, 10, "the alerts")
        # Stopped, the runner has sent all it meant to (a stop drains notifications): so
        # nothing more can arrive after the checks below.
        started.remove(live)
        live.join()
    assert [(p["channel"], p["text"].split(" (")[0]) for p in slack.posts] == [
        ("C-OPS", "⚠️ *Flaky* failed"),
        ("C-OPS", "✅ *Flaky* recovered"),
    ]
    assert slack.posts[1]["text"].endswith("after 2 failed runs")
    events = [(e["event"], e["id"], e["run"]["status"]) for e in receiver.events]
    assert events == [
        ("run.failed", f"run-{first}-failed", "error"),
        ("run.recovered", f"run-{third}-recovered", "ok"),
    ]
    for request in receiver.recorded():
        mac = hmac.new(SECRET.encode(), request.raw, hashlib.sha256).hexdigest()
        assert request.headers["x-jeeves-signature"] == f"sha256={mac}"
        assert json.loads(request.raw)["job"]["id"] == "flaky"
    assert receiver.events[0]["run"]["error"] == "run 1: disk full"


def test_a_webhook_that_never_answers_does_not_delay_the_run(
    tmp_path: Path, started: list[LiveRunner]
) -> None:
    with SlackStandIn() as slack, WebhookStandIn() as receiver:
        receiver.script(HANG)
        hook = {"name": "stuck", "url": receiver.url, "events": ["run.failed"]}
        live = start(
            started, tmp_path, notifications=notifications(slack, tmp_path, webhooks=[hook])
        )
        live.add_job("bad", "fails.sh", on_failure="webhook:stuck")
        with httpx.Client(base_url=live.url, timeout=30) as http:
            began = time.monotonic()
            assert run_now(http, "bad")["status"] == "error"
            assert time.monotonic() - began < 3  # the webhook's 10 s timeout is not waited for
            assert http.get("/health").status_code == 200
        assert receiver.arrived.wait(5), "the delivery was not even tried"
        assert slack.posts == []  # the job's failure destination is the webhook


def test_a_reload_reads_webhooks_again(tmp_path: Path, started: list[LiveRunner]) -> None:
    """What SIGHUP does: the new webhooks take the events from then on."""
    with SlackStandIn() as slack, WebhookStandIn() as old, WebhookStandIn() as new:
        settings = notifications(
            slack,
            tmp_path,
            webhooks=[{"name": "hook", "url": old.url, "events": ["run.failed"]}],
        )
        live = start(started, tmp_path, notifications=settings)
        config_file = tmp_path / "config.json"
        live.runner.config_path = str(config_file)
        live.add_job("bad", "fails.sh")
        live.add_job("worse", "fails.sh")
        with httpx.Client(base_url=live.url, timeout=30) as http:
            run_now(http, "bad")
            wait_until(lambda: old.events, 10, "the first delivery")
            moved = {
                **settings,
                "webhooks": [{"name": "hook", "url": new.url, "events": ["run.failed"]}],
            }
            config_file.write_text(
                json.dumps({"dbPath": str(tmp_path / "r.sqlite"), "notifications": moved})
            )
            assert live.loop is not None
            asyncio.run_coroutine_threadsafe(live.runner.reload_config(), live.loop).result(10)
            run_now(http, "worse")
            wait_until(lambda: new.events, 10, "the delivery after the reload")
        assert [e["job"]["id"] for e in old.events] == ["bad"]
        assert [e["job"]["id"] for e in new.events] == ["worse"]


def test_add_job_and_edit_job_refuse_an_unknown_webhook(tmp_path: Path, run_cli: Any) -> None:
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    config = tmp_path / "config.json"
    hooks = [{"name": "pager", "url": "http://127.0.0.1:9/h", "events": []}]
    config.write_text(
        json.dumps({"dbPath": str(tmp_path / "r.sqlite"), "notifications": {"webhooks": hooks}})
    )
    base = ("add-job", "--id", "j", "--name", "J", "--schedule", "@daily", "--script", str(script))
    refused = run_cli(*base, "--on-failure", "webhook:pagr", "-c", str(config))
    assert refused.code == 1
    assert refused.stderr.strip() == (
        'error: on_failure: no webhook named "pagr" in notifications.webhooks (known: pager)'
    )
    assert run_cli(*base, "--on-failure", "webhook:pager", "-c", str(config)).code == 0
    edited = run_cli("edit-job", "j", "--on-success", "webhook:nope", "-c", str(config))
    assert edited.code == 1
    assert 'on_success: no webhook named "nope"' in edited.stderr
