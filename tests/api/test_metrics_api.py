"""GET /metrics on the REAL runner after real runs, read back with prometheus-client's own
text parser."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from jeeves_runner.models import Job
from jeeves_runner.store import SqliteStore
from live_runner import NEVER_DURING_TESTS, SCRIPTS, LiveRunner

T0 = "2026-03-02T01:00:00.000Z"


def scrape(http: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    found = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def get(found: dict[Any, float], name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def test_metrics_after_real_runs(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "r.sqlite")
    for job in (
        Job("good", "Good", NEVER_DURING_TESTS, str(SCRIPTS / "ok_with_result.py")),
        Job("bad", "Bad", NEVER_DURING_TESTS, str(SCRIPTS / "fails.sh")),
        Job("often", "Often", "* * * * * *", str(SCRIPTS / "ok_with_result.py")),
        Job("broken", "Broken", "61 * * * *", str(SCRIPTS / "ok_with_result.py")),
    ):
        store.jobs.add_job(job, T0)
    store.queues.enqueue("mail", "{}", 0, None, T0)
    store.close()
    # A failure channel without a Slack token: each failure is a message due, not sent.
    live = LiveRunner(tmp_path, notifications={"defaultOnFailure": "C1"}).start()
    try:
        with httpx.Client(base_url=live.url, timeout=30) as http:
            idle = scrape(http)
            # `often` may be running at this instant; nothing else can be.
            assert get(idle, "jeeves_runner_runs_in_flight") in (0, 1)
            assert get(idle, "jeeves_runner_failed_registrations") == 1
            next_fire = get(idle, "jeeves_runner_job_next_fire_timestamp_seconds", job="often")
            assert next_fire is not None and -1 < next_fire - time.time() <= 1.5
            assert get(idle, "jeeves_runner_job_next_fire_timestamp_seconds", job="broken") is None
            assert get(idle, "jeeves_runner_queue_depth", queue="mail") == 1
            age = get(idle, "jeeves_runner_queue_oldest_pending_age_seconds", queue="mail")
            assert age is not None and age > 0

            assert http.post("/jobs/good/run").json()["result"]["status"] == "ok"
            assert http.post("/jobs/bad/run").json()["result"]["status"] == "error"
            deadline = time.monotonic() + 10
            while True:
                found = scrape(http)
                lateness = get(found, "jeeves_runner_fire_lateness_seconds_count") or 0
                due = get(found, "jeeves_runner_notifications_total", outcome="no_token") or 0
                if lateness >= 1 and due >= 1:
                    break
                assert time.monotonic() < deadline, "no scheduled fire or notification seen"
                time.sleep(0.05)
    finally:
        live.join()

    total = "jeeves_runner_runs_finished_total"
    assert get(found, total, job="good", status="ok") == 1
    assert get(found, total, job="bad", status="error") == 1
    assert get(found, total, job="bad", status="ok") is None
    assert get(found, "jeeves_runner_run_duration_seconds_count", job="good") == 1
    assert get(found, "jeeves_runner_run_duration_seconds_count", job="bad") == 1
    good_ok = get(found, "jeeves_runner_job_last_success_timestamp_seconds", job="good")
    bad_fail = get(found, "jeeves_runner_job_last_failure_timestamp_seconds", job="bad")
    assert good_ok is not None and abs(good_ok - time.time()) < 30
    assert bad_fail is not None and abs(bad_fail - time.time()) < 30
    assert get(found, "jeeves_runner_job_last_failure_timestamp_seconds", job="good") is None
    # A fire is late by the time from its instant to its start: well under a second here.
    assert get(found, "jeeves_runner_fire_lateness_seconds_bucket", le="1.0") == get(
        found, "jeeves_runner_fire_lateness_seconds_count"
    )
    assert get(found, "jeeves_runner_database_errors_total") == 0
