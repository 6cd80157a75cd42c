"""Jobs routes and the app's error handling, against the real server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
from fake_control import INSTANT, NOW, FakeControl
from live_api import Background, LiveApi, wait_for
from pydantic import BaseModel
from structlog.testing import capture_logs

from jeeves_runner.api.app import create_app
from jeeves_runner.api.job_schedule import NextRunList, with_next_runs
from jeeves_runner.api.jobs import BodyCache
from jeeves_runner.clock import FakeClock
from jeeves_runner.models import (
    JOB_POLICY_FIELDS,
    Job,
    JobType,
    OverlapPolicy,
    RunResult,
    RunStatus,
    RunTrigger,
)
from jeeves_runner.scheduling.fire_schedule import FirePlan
from jeeves_runner.store import SqliteStore
from jeeves_runner.store.jobs_list import JobsListView

POLICY_DEFAULTS = {
    "retries": 0,
    "retry_delay_ms": 10_000,
    "retry_backoff": 2.0,
    "retry_max_delay_ms": 600_000,
    "retry_on": ["error", "timeout"],
    "catchup": "skip",
    "catchup_max": 10,
    "catchup_window_ms": 86_400_000,
    "notify": "change",
    "notify_repeat": 10,
    "late_after_ms": 60_000,
    "max_duration_ms": None,
}
JOB_FIELDS = {
    "id",
    "name",
    "schedule",
    "script",
    "type",
    "enabled",
    "timeout_ms",
    "overlap_policy",
    "on_failure",
    "on_success",
    "description",
    "created_at",
    "updated_at",
    "command",
    "args",
    "env",
    "cwd",
    "timezone",
    "tags",
    "run_on",
    "source",
    # Issue 13's policies, at their defaults unless set.
    *JOB_POLICY_FIELDS,
}
RUN_FIELDS = {
    "id",
    "job_id",
    "started_at",
    "finished_at",
    "status",
    "exit_code",
    "stdout",
    "stderr",
    "duration_ms",
}
LIMIT_ERROR = {"error": "limit must be an integer from 1 to 1000"}
JOB_NOT_FOUND = {"error": "Job not found"}


# ---- GET /jobs ---------------------------------------------------------------------------

NOW_TEXT = "2026-03-02T12:00:00.000Z"


def test_list_jobs_empty(client: httpx.Client) -> None:
    response = client.get("/jobs")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"jobs": []}


def test_list_jobs_fields_and_types(client: httpx.Client, control: FakeControl) -> None:
    control.add_job(
        "sync-email",
        name="Sync Email Metadata",
        schedule="3 * * * *",
        script="/opt/scripts/sync-email.js",
        timeout_ms=120000,
        on_failure="C0123456789",
    )
    control.add_job(
        "nightly",
        type=JobType.SESSION,
        script="Summarise the day",
        enabled=False,
        overlap_policy=OverlapPolicy.QUEUE,
        description="A session job",
    )
    jobs = client.get("/jobs").json()["jobs"]
    assert [j["id"] for j in jobs] == ["nightly", "sync-email"]
    nightly, sync = jobs
    assert set(sync) == JOB_FIELDS | {"last_status", "last_run", "next_run"}
    assert sync == {
        "id": "sync-email",
        "name": "Sync Email Metadata",
        "schedule": "3 * * * *",
        "script": "/opt/scripts/sync-email.js",
        "type": "script",
        "enabled": 1,
        "timeout_ms": 120000,
        "overlap_policy": "skip",
        "on_failure": "C0123456789",
        "on_success": None,
        "description": None,
        "created_at": "2026-03-02T12:00:00.000Z",
        "updated_at": "2026-03-02T12:00:00.000Z",
        "command": None,
        "args": [],
        "env": {},
        "cwd": None,
        "timezone": None,
        "tags": [],
        "run_on": [],
        "source": None,
        **POLICY_DEFAULTS,
        "last_status": None,
        "last_run": None,
        "next_run": "2026-03-02T12:03:00.000Z",  # "3 * * * *" after the tests' noon
    }
    assert nightly["next_run"] is None  # disabled
    # `enabled` is the integer 1 or 0, never a boolean.
    assert type(sync["enabled"]) is int and type(nightly["enabled"]) is int
    assert nightly["enabled"] == 0
    assert nightly["type"] == "session"
    assert nightly["overlap_policy"] == "queue"
    assert nightly["timeout_ms"] is None


def test_list_jobs_last_run_ignores_later_skips(client: httpx.Client, control: FakeControl) -> None:
    control.add_job("sync")
    started = NOW - timedelta(minutes=5)
    control.add_run("sync", RunStatus.ERROR, started, started + timedelta(seconds=2))
    control.add_skip("sync", NOW - timedelta(minutes=1))
    (job,) = client.get("/jobs").json()["jobs"]
    assert job["last_status"] == "error"
    assert job["last_run"] == "2026-03-02T11:55:00.000Z"
    assert INSTANT.match(job["last_run"])


def test_list_jobs_shows_a_running_run(client: httpx.Client, control: FakeControl) -> None:
    control.add_job("sync")
    control.add_run("sync", RunStatus.OK, NOW - timedelta(hours=1), NOW - timedelta(minutes=59))
    control.add_run("sync", RunStatus.RUNNING, NOW - timedelta(seconds=3))
    (job,) = client.get("/jobs").json()["jobs"]
    assert (job["last_status"], job["last_run"]) == ("running", "2026-03-02T11:59:57.000Z")


def test_list_jobs_shows_a_write_from_another_connection_on_the_next_get(
    client: httpx.Client, control: FakeControl, tmp_db: Any
) -> None:
    """GET /jobs follows the database's change feed, not the runner's own data version: a
    write by another process (here another connection that the runner is never told about)
    is in the very next answer, and an answer with nothing changed is the same bytes."""
    control.add_job("a")
    control.add_job("b")
    first = client.get("/jobs")
    assert client.get("/jobs").content == first.content
    announced = control.version
    other = SqliteStore(tmp_db)
    try:
        other.jobs.set_enabled("a", False, NOW_TEXT)
        assert client.get("/jobs").json()["jobs"][0]["enabled"] == 0
        run_id = other.runs.create_run("b", RunTrigger.MANUAL, RunStatus.RUNNING, NOW_TEXT)
        assert client.get("/jobs").json()["jobs"][1]["last_status"] == "running"
        other.runs.finish_run(run_id, RunResult(status=RunStatus.ERROR, duration_ms=3), NOW_TEXT)
        assert client.get("/jobs").json()["jobs"][1]["last_status"] == "error"
        other.jobs.add_job(Job(id="c", name="C", schedule="@daily", script="/c.sh"), NOW_TEXT)
        assert [j["id"] for j in client.get("/jobs").json()["jobs"]] == ["a", "b", "c"]
        other.jobs.delete_job("a")
        body = client.get("/jobs")
        assert [j["id"] for j in body.json()["jobs"]] == ["b", "c"]
        assert body.content == with_next_runs(other.jobs.jobs_list_json(), control.fire_plan())
        assert control.version == announced, "nobody told the runner"
    finally:
        other.close()


def test_list_jobs_on_postgresql_shows_a_write_from_another_connection(
    pg_url: str, clock: FakeClock
) -> None:
    """As above, on PostgreSQL: another process's commits (here another store's connections)
    are in the next GET /jobs, found through the transactions they were made in."""
    from jeeves_runner.store.postgres import PostgresStore

    served, other = PostgresStore(pg_url), PostgresStore(pg_url)
    control = FakeControl(served, clock)  # type: ignore[arg-type]
    try:
        with (
            LiveApi(create_app(control, clock=clock)) as api,
            httpx.Client(base_url=api.url) as client,
        ):
            other.jobs.add_job(Job(id="a", name="A", schedule="@daily", script="/a.sh"), NOW_TEXT)
            assert [j["id"] for j in client.get("/jobs").json()["jobs"]] == ["a"]
            run_id = other.runs.create_run("a", RunTrigger.MANUAL, RunStatus.RUNNING, NOW_TEXT)
            assert client.get("/jobs").json()["jobs"][0]["last_status"] == "running"
            result = RunResult(status=RunStatus.OK, duration_ms=3)
            other.runs.finish_run(run_id, result, NOW_TEXT)
            assert client.get("/jobs").json()["jobs"][0]["last_status"] == "ok"
            other.jobs.add_job(Job(id="b", name="B", schedule="@daily", script="/b.sh"), NOW_TEXT)
            other.jobs.delete_job("a")
            body = client.get("/jobs")
            assert [j["id"] for j in body.json()["jobs"]] == ["b"]
            assert body.content == with_next_runs(other.jobs.jobs_list_json(), control.fire_plan())
    finally:
        control.gateway.close()  # closes `served`
        other.close()


def test_list_jobs_next_run_is_the_schedulers_plan_like_the_detail(
    client: httpx.Client, control: FakeControl
) -> None:
    control.add_job("hourly", schedule="0 * * * *")
    control.add_job("london", schedule="30 9 * * *", timezone="Europe/London")
    control.add_job("never", schedule="0 0 31 2 *")  # stored behind the rules' back
    control.add_job("off", enabled=False)
    # An env key named "id" puts `{"id":"` inside a job: the list is decoded, not spliced.
    control.add_job("z-env", env={"id": "x"})
    listed = {j["id"]: j["next_run"] for j in client.get("/jobs").json()["jobs"]}
    assert listed == {
        "hourly": "2026-03-02T13:00:00.000Z",
        "london": "2026-03-03T09:30:00.000Z",
        "never": None,
        "off": None,
        "z-env": "2026-03-02T12:03:00.000Z",
    }
    for job_id, next_run in listed.items():
        assert client.get(f"/jobs/{job_id}").json()["job"]["next_run"] == next_run
    assert client.get("/jobs?tag=none").json() == {"jobs": []}


def test_next_runs_spliced_into_the_stores_bytes_equal_a_decoded_list(store: Any) -> None:

    for job_id in ("a", "b.c", "d_e"):
        store.jobs.add_job(
            Job(id=job_id, name='}{\\"id\\":', schedule="* * * * *", script="/x"), NOW_TEXT
        )
    body = store.jobs.jobs_list_json()
    plan = FirePlan(1, {"a": NOW.timestamp(), "d_e": NOW.timestamp() + 60})
    spliced = with_next_runs(body, plan)
    expected = orjson.loads(body)
    for job, next_run in zip(
        expected["jobs"], [NOW_TEXT, None, "2026-03-02T12:01:00.000Z"], strict=True
    ):
        job["next_run"] = next_run
    assert orjson.loads(spliced) == expected
    assert spliced != orjson.dumps(expected)  # spliced, not encoded again
    assert with_next_runs(b'{"jobs":[]}', plan) == b'{"jobs":[]}'


def test_next_runs_kept_job_by_job_equal_the_whole_splice_and_remake_only_what_moved(
    store: Any,
) -> None:
    for job_id in ("a", "b", "c", "d"):
        store.jobs.add_job(Job(id=job_id, name=job_id, schedule="* * * * *", script="/x"), NOW_TEXT)
    view, kept = JobsListView(), NextRunList()
    soon = NOW.timestamp() + 60
    plans = iter(range(1, 100))

    def both(next_of: dict[str, float]) -> bytes:
        plan = FirePlan(next(plans), next_of)
        body = store.jobs.refresh_jobs_list(view)
        out = kept.body(view, body, plan)
        assert out == with_next_runs(body, plan)
        return out

    first = both({"a": soon, "b": soon, "c": NOW.timestamp()})
    assert orjson.loads(first)["jobs"][3]["next_run"] is None
    ids = ["a", "b", "c", "d"]

    def remade(before: list[bytes]) -> list[str]:
        return [i for i, old, new in zip(ids, before, kept._made, strict=True) if new is not old]

    made = kept._made.copy()
    # One job's next fire moves: the other three are the same objects as before.
    both({"a": soon, "b": soon + 60, "c": NOW.timestamp()})
    assert remade(made) == ["b"]
    # One job's row changes (a run written, seen through the change feed): only it is remade.
    made = kept._made.copy()
    store.jobs.set_enabled("c", False, NOW_TEXT)
    out = both({"a": soon, "b": soon + 60})
    assert remade(made) == ["c"]
    assert orjson.loads(out)["jobs"][2]["enabled"] == 0
    # Jobs added and deleted, and the same plan asked again: the same bytes object.
    store.jobs.add_job(Job(id="bb", name="bb", schedule="* * * * *", script="/x"), NOW_TEXT)
    store.jobs.delete_job("a")
    out = both({"b": soon, "bb": soon})
    assert [j["id"] for j in orjson.loads(out)["jobs"]] == ["b", "bb", "c", "d"]
    body = store.jobs.refresh_jobs_list(view)
    assert kept.body(view, body, FirePlan(98, {})) is kept.body(view, body, FirePlan(98, {}))
    assert kept.body(view, b'{"jobs":[]}', FirePlan(98, {})) == b'{"jobs":[]}'


def test_list_jobs_body_is_built_again_when_the_plan_moves(
    client: httpx.Client, control: FakeControl
) -> None:
    control.add_job("a", schedule="0 * * * *")
    first = client.get("/jobs").json()["jobs"][0]["next_run"]
    assert first == "2026-03-02T13:00:00.000Z"
    # A fire moved the plan (the data version did not): the next list shows the new fire.
    plan = control.fire_plan()
    control._plan = (control.version, FirePlan(plan.version + 1, {"a": plan.next["a"] + 3600}))
    assert client.get("/jobs").json()["jobs"][0]["next_run"] == "2026-03-02T14:00:00.000Z"


# ---- GET /jobs/:id -----------------------------------------------------------------------


def test_get_job(client: httpx.Client, control: FakeControl) -> None:
    control.add_job("sync", timeout_ms=5000, on_success="C42")
    response = client.get("/jobs/sync")
    assert response.status_code == 200
    job = response.json()["job"]
    assert set(job) == JOB_FIELDS | {"next_run"}
    assert job["next_run"] == "2026-03-02T12:03:00.000Z"  # "3 * * * *" after the tests' noon
    assert job["id"] == "sync"
    assert job["enabled"] == 1
    assert job["timeout_ms"] == 5000
    assert job["on_success"] == "C42"
    assert INSTANT.match(job["created_at"]) and INSTANT.match(job["updated_at"])


def test_get_unknown_job_is_404(client: httpx.Client) -> None:
    response = client.get("/jobs/nope")
    assert response.status_code == 404
    assert response.json() == JOB_NOT_FOUND


# ---- GET /jobs/:id/runs ------------------------------------------------------------------


@pytest.fixture
def with_runs(control: FakeControl) -> list[int]:
    """Job `sync` with 55 finished runs, one a minute; the last one failed."""
    control.add_job("sync")
    ids = []
    for n in range(55):
        started = NOW - timedelta(minutes=55 - n)
        status = RunStatus.ERROR if n == 54 else RunStatus.OK
        result = RunResult(
            status=status,
            duration_ms=1500,
            exit_code=1 if n == 54 else 0,
            stdout=f"run {n}\n",
            stderr="boom\n" if n == 54 else "",
            error="Exit code 1" if n == 54 else None,
        )
        ids.append(
            control.add_run("sync", status, started, started + timedelta(seconds=1.5), result)
        )
    return ids


def test_runs_newest_first_with_default_limit(client: httpx.Client, with_runs: list[int]) -> None:
    response = client.get("/jobs/sync/runs")
    assert response.status_code == 200
    runs = response.json()["runs"]
    assert len(runs) == 50
    assert [r["id"] for r in runs] == sorted(with_runs, reverse=True)[:50]
    newest = runs[0]
    assert set(newest) >= RUN_FIELDS
    assert {k: newest[k] for k in RUN_FIELDS} == {
        "id": with_runs[-1],
        "job_id": "sync",
        "started_at": "2026-03-02T11:59:00.000Z",
        "finished_at": "2026-03-02T11:59:01.500Z",
        "status": "error",
        "exit_code": 1,
        "stdout": "run 54\n",
        "stderr": "boom\n",
        "duration_ms": 1500,
    }
    assert newest["error"] == "Exit code 1"
    assert newest["trigger"] == "schedule"


@pytest.mark.parametrize("limit", ["1", "3", "1000", "007"])
def test_runs_limit(client: httpx.Client, with_runs: list[int], limit: str) -> None:
    runs = client.get("/jobs/sync/runs", params={"limit": limit}).json()["runs"]
    assert [r["id"] for r in runs] == sorted(with_runs, reverse=True)[: int(limit)]


@pytest.mark.parametrize(
    "limit", ["0", "1001", "-1", "abc", "1.5", "", " 5", "+5", "1e3", "5_0", "٣", "99999999999"]
)
def test_runs_bad_limit_is_400(client: httpx.Client, with_runs: list[int], limit: str) -> None:
    response = client.get("/jobs/sync/runs", params={"limit": limit})
    assert response.status_code == 400
    assert response.json() == LIMIT_ERROR


def test_runs_of_unknown_job_is_404(client: httpx.Client) -> None:
    response = client.get("/jobs/nope/runs")
    assert response.status_code == 404
    assert response.json() == JOB_NOT_FOUND


def test_runs_of_job_without_runs_is_empty(client: httpx.Client, control: FakeControl) -> None:
    control.add_job("fresh")
    assert client.get("/jobs/fresh/runs").json() == {"runs": []}


def test_running_run_has_text_output_fields(client: httpx.Client, control: FakeControl) -> None:
    control.add_job("sync")
    control.add_run("sync", RunStatus.RUNNING, NOW)
    (run,) = client.get("/jobs/sync/runs").json()["runs"]
    assert run["status"] == "running"
    assert (run["stdout"], run["stderr"], run["finished_at"]) == ("", "", None)


def test_long_run_lists_are_served_too(client: httpx.Client, with_runs: list[int]) -> None:
    # Above INLINE_RUNS_MAX the list is built in a worker thread; same answer.
    runs = client.get("/jobs/sync/runs", params={"limit": "500"}).json()["runs"]
    assert len(runs) == 55


# ---- POST /jobs/:id/run ------------------------------------------------------------------


def test_trigger_returns_the_result(client: httpx.Client, control: FakeControl) -> None:
    control.add_job("sync")
    control.results["sync"] = RunResult(
        status=RunStatus.OK, duration_ms=5432, exit_code=0, stdout="Done", stderr=""
    )
    response = client.post("/jobs/sync/run")
    assert response.status_code == 200
    result = response.json()["result"]
    assert {k: result[k] for k in ("status", "exit_code", "duration_ms", "stdout", "stderr")} == {
        "status": "ok",
        "exit_code": 0,
        "duration_ms": 5432,
        "stdout": "Done",
        "stderr": "",
    }
    (run,) = client.get("/jobs/sync/runs").json()["runs"]
    assert (run["status"], run["trigger"], run["stdout"]) == ("ok", "manual", "Done")


def test_trigger_of_a_failing_job_is_still_200(client: httpx.Client, control: FakeControl) -> None:
    control.add_job("flaky")
    control.results["flaky"] = RunResult(
        status=RunStatus.TIMEOUT,
        duration_ms=1000,
        exit_code=None,
        stderr="killed",
        error="Job timed out after 1000 ms",
    )
    response = client.post("/jobs/flaky/run")
    assert response.status_code == 200
    result = response.json()["result"]
    assert result["status"] == "timeout"
    assert result["exit_code"] is None
    assert result["error"] == "Job timed out after 1000 ms"


def test_trigger_blocks_until_the_run_ends(
    live_api: LiveApi, client: httpx.Client, control: FakeControl
) -> None:
    control.add_job("slow")
    gate = control.hold("slow")
    request = Background(live_api.url, "POST", "/jobs/slow/run")
    wait_for(lambda: client.get("/stats").json()["running"] == 1, "the run to start")
    assert not request.done
    gate.set()
    response = request.result()
    assert response.status_code == 200
    assert response.json()["result"]["status"] == "ok"
    assert client.get("/stats").json()["running"] == 0


def test_trigger_unknown_job_is_404(client: httpx.Client) -> None:
    response = client.post("/jobs/nonexistent/run")
    assert response.status_code == 404
    assert response.json() == {"error": "Job 'nonexistent' not found"}


def test_trigger_while_running_with_skip_policy_is_409(
    live_api: LiveApi, client: httpx.Client, control: FakeControl
) -> None:
    control.add_job("sync", overlap_policy=OverlapPolicy.SKIP)
    gate = control.hold("sync")
    first = Background(live_api.url, "POST", "/jobs/sync/run")
    wait_for(lambda: control.running_count == 1, "the first run to start")
    response = client.post("/jobs/sync/run")
    assert response.status_code == 409
    assert response.json() == {"error": "Job 'sync' is already running"}
    gate.set()
    assert first.result().status_code == 200
    assert first.result().json()["result"]["status"] == "ok"


def test_trigger_of_a_disabled_job_runs(client: httpx.Client, control: FakeControl) -> None:
    control.add_job("off", enabled=False)
    response = client.post("/jobs/off/run")
    assert response.status_code == 200
    assert response.json()["result"]["status"] == "ok"


def test_trigger_while_shutting_down_is_503(client: httpx.Client, control: FakeControl) -> None:
    control.add_job("sync")
    control.shutting_down = True
    response = client.post("/jobs/sync/run")
    assert response.status_code == 503
    assert response.json() == {"error": "The runner is shutting down"}


# ---- POST /jobs/:id/enable|disable -------------------------------------------------------


def test_disable_then_enable(client: httpx.Client, control: FakeControl) -> None:
    control.add_job("sync")
    client.get("/jobs")  # a cached list must not survive the change
    response = client.post("/jobs/sync/disable")
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert client.get("/jobs/sync").json()["job"]["enabled"] == 0
    assert client.get("/jobs").json()["jobs"][0]["enabled"] == 0
    assert client.post("/jobs/sync/enable").json() == {"ok": True}
    assert client.get("/jobs").json()["jobs"][0]["enabled"] == 1
    assert control.enabled_calls == [("sync", False), ("sync", True)]


@pytest.mark.parametrize("action", ["enable", "disable"])
def test_enable_disable_unknown_job_is_404(client: httpx.Client, action: str) -> None:
    response = client.post(f"/jobs/nope/{action}")
    assert response.status_code == 404
    assert response.json() == JOB_NOT_FOUND


# ---- errors the app answers itself -------------------------------------------------------


@pytest.mark.parametrize("path", ["/nope", "/jobs/", "/jobs/a/b/c", "/jobs//runs"])
def test_unknown_route_is_404(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json() == {"error": f"No route for GET {path}"}


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/jobs", "GET, POST"),
        ("PUT", "/jobs", "GET, POST"),
        ("GET", "/jobs/x/run", "POST"),
        ("PUT", "/jobs/x/enable", "POST, PATCH"),
        ("PUT", "/jobs/x", "GET, PATCH, DELETE"),
        ("POST", "/health", "GET"),
    ],
)
def test_wrong_method_is_405_with_allow(
    client: httpx.Client, method: str, path: str, allow: str
) -> None:
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.json() == {"error": f"Method {method} is not allowed on {path}"}


class Probe(BaseModel):
    count: int


@pytest.fixture
def probe_client(control: FakeControl, clock: FakeClock) -> Iterator[httpx.Client]:
    """The app with one extra route that takes a JSON body, as the queue routes do."""
    app = create_app(control, clock=clock)

    @app.post("/probe")
    async def probe(body: Probe) -> dict[str, int]:
        return {"count": body.count}

    with LiveApi(app) as api, httpx.Client(base_url=api.url, timeout=10) as http:
        yield http


def test_malformed_json_is_400(probe_client: httpx.Client) -> None:
    response = probe_client.post(
        "/probe", content=b'{"count": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {"error": "Request body is not valid JSON"}


def test_invalid_body_field_is_400_naming_it(probe_client: httpx.Client) -> None:
    response = probe_client.post("/probe", json={"count": "many"})
    assert response.status_code == 400
    message = response.json()["error"]
    assert message.startswith("body field 'count': ")
    assert probe_client.post("/probe", json={"count": 3}).json() == {"count": 3}


def test_unexpected_error_is_500_and_logged(client: httpx.Client, control: FakeControl) -> None:
    control.errors["boom"] = RuntimeError("disk on fire")
    with capture_logs() as logs:
        response = client.post("/jobs/boom/run")
    assert response.status_code == 500
    assert response.json() == {"error": "Internal error"}
    (entry,) = [e for e in logs if e["event"] == "unhandled error in request"]
    assert (entry["method"], entry["path"], entry["log_level"]) == (
        "POST",
        "/jobs/boom/run",
        "error",
    )
    # The connection is still good for the next request.
    assert client.get("/health").status_code == 200


# ---- the body cache ------------------------------------------------------------------------


def test_body_cache_keeps_one_version() -> None:
    cache = BodyCache(max_bytes=10)
    cache.put(7, "a", b"aaa")
    assert cache.get(7, "a") == b"aaa"
    assert cache.get(8, "a") is None
    cache.put(-3, "b", b"bb")  # versions are opaque tokens: any other value is a change
    assert cache.get(-3, "b") == b"bb"
    assert cache.get(-3, "a") is None  # version 7's bodies went when -3 arrived
    assert cache.get(7, "a") is None


def test_a_body_is_never_served_after_its_version_moved(
    client: httpx.Client, control: FakeControl, store: SqliteStore
) -> None:
    tagged = {"tags": ("t",)}
    control.add_job("a", **tagged)
    control.version_moves_on_read = True  # as if something changed at every look
    assert [j["id"] for j in client.get("/jobs?tag=t").json()["jobs"]] == ["a"]
    store.jobs.add_job(
        Job(id="b", name="B", schedule="* * * * *", script="/b.sh", tags=("t",)), NOW_TEXT
    )
    assert [j["id"] for j in client.get("/jobs?tag=t").json()["jobs"]] == ["a", "b"]
    # Once the version holds still, the body is kept: a change nobody announced is not seen
    # (which is what shows the cache is used) until the version moves.
    control.version_moves_on_read = False
    client.get("/jobs?tag=t")
    store.jobs.add_job(
        Job(id="c", name="C", schedule="* * * * *", script="/c.sh", tags=("t",)), NOW_TEXT
    )
    assert [j["id"] for j in client.get("/jobs?tag=t").json()["jobs"]] == ["a", "b"]
    control.version += 1
    assert [j["id"] for j in client.get("/jobs?tag=t").json()["jobs"]] == ["a", "b", "c"]


def test_body_cache_is_bounded_in_bytes() -> None:
    cache = BodyCache(max_bytes=10)
    cache.put(1, "a", b"1234")
    cache.put(1, "b", b"5678")
    cache.put(1, "c", b"90ab")  # 12 bytes would not fit: the oldest goes
    assert cache.get(1, "a") is None
    assert (cache.get(1, "b"), cache.get(1, "c")) == (b"5678", b"90ab")
    cache.put(1, "huge", b"x" * 11)
    assert cache.get(1, "huge") is None
    assert cache.get(1, "c") == b"90ab"
