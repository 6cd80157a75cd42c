"""Tokens, scopes, the Origin check and the audit log against the REAL runner on 127.0.0.1:
every route the API serves (read from its own /openapi.json, so a new route is covered the
day it is added) with every kind of credential."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from live_api import wait_for
from starlette.datastructures import Headers

from jeeves_runner import auth
from jeeves_runner.access_model import Scope, StoredToken
from jeeves_runner.api.access import _access_headers, secret_of_cookie, session_secret
from jeeves_runner.auth import InsecureBindError, hash_secret
from jeeves_runner.models import RunResult, RunStatus, RunTrigger, format_instant
from jeeves_runner.store import SqliteStore
from live_runner import LiveRunner

SECRETS = {scope: f"jr_test-secret-for-{scope.value}" for scope in Scope}
T0 = "2026-03-02T01:00:00.000Z"
PARAMS = {
    "{job_id}": "j",
    "{queue_id}": "q",
    "{namespace}": "ns",
    "{key}": "k",
    "{run_id}": "1",
}
RANK = {None: -1, Scope.READ: 0, Scope.TRIGGER: 1, Scope.ADMIN: 2}


def add_tokens(db: Path, scopes: list[Scope]) -> None:
    store = SqliteStore(db)
    try:
        for scope in scopes:
            store.tokens.create_token(
                StoredToken(scope.value, scope, hash_secret(SECRETS[scope]), T0, "test")
            )
    finally:
        store.close()


def bearer(scope: Scope) -> dict[str, str]:
    return {"Authorization": f"Bearer {SECRETS[scope]}"}


def wait_until(predicate: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[LiveRunner]:
    add_tokens(tmp_path / "r.sqlite", list(Scope))
    runner = LiveRunner(tmp_path, shutdownGraceMs=10_000).start()
    runner.add_job("j", "ok_with_result.py")
    store = runner.runner.sync_store
    store.queues.enqueue("q", "{}", 0, None, T0)
    store.state.set("ns", "k", "v", None, format_instant(runner.runner.clock.now()))
    # Run 1, finished: its routes answer (a cancel of it: 409, already finished).
    run_id = store.runs.create_run("j", RunTrigger.MANUAL, RunStatus.RUNNING, T0)
    store.runs.finish_run(run_id, RunResult(RunStatus.OK, 5, exit_code=0), T0)
    try:
        yield runner
    finally:
        runner.join()


def routes(http: httpx.Client) -> list[tuple[str, str]]:
    spec = http.get("/openapi.json", headers=bearer(Scope.READ)).json()
    found = [("GET", "/openapi.json")]
    for template, operations in spec["paths"].items():
        path = template
        for name, value in PARAMS.items():
            path = path.replace(name, value)
        assert "{" not in path, f"no test value for a parameter of {template}"
        found += [(method.upper(), path) for method in operations]
    return sorted(found)


def test_every_route_with_every_scope(guarded: LiveRunner) -> None:
    with httpx.Client(base_url=guarded.url, timeout=30) as http:
        # Deleting the job goes last: the routes after it would find no job.
        table = sorted(routes(http), key=lambda route: route[0] == "DELETE")
        assert len(table) >= 17
        for method, path in table:
            needed = auth.required_scope(method, path)
            if path == "/audit":
                expected_needed = Scope.ADMIN
            elif method == "GET":
                expected_needed = Scope.READ
            elif path.endswith(("/run", "/enable", "/disable", "/cancel")):
                expected_needed = Scope.TRIGGER
            else:  # adding, editing and deleting jobs
                expected_needed = Scope.ADMIN
            assert needed is expected_needed, (method, path)
            for label, headers in (
                ("none", {}),
                ("wrong", {"Authorization": "Bearer jr_not-a-token"}),
                ("not bearer", {"Authorization": f"Basic {SECRETS[Scope.ADMIN]}"}),
            ):
                response = http.request(method, path, headers=headers)
                assert response.status_code == 401, (method, path, label)
                assert response.json() == {"error": "A valid token is required"}
                assert response.headers["www-authenticate"] == "Bearer"
            for scope in Scope:
                response = http.request(method, path, headers=bearer(scope))
                if scope.allows(needed) and path.endswith("/cancel"):
                    # Let through, then refused: run 1 has finished.
                    assert response.status_code == 409, (method, path, scope, response.text)
                elif scope.allows(needed) and method in ("POST", "PATCH") and needed is Scope.ADMIN:
                    # A job edit with no body: let through, then refused for what it lacks.
                    assert response.status_code == 400, (method, path, scope, response.text)
                elif scope.allows(needed):
                    assert response.status_code == 200, (method, path, scope, response.text)
                else:
                    assert response.status_code == 403, (method, path, scope)
                    assert response.json() == {
                        "error": f"The token '{scope.value}' has scope {scope.value}; "
                        f"this request needs {needed.value}"
                    }


def test_head_answers_on_every_get_route(guarded: LiveRunner) -> None:
    with httpx.Client(base_url=guarded.url, timeout=30, headers=bearer(Scope.ADMIN)) as http:
        gets = [path for method, path in routes(http) if method == "GET"]
        for path in gets:
            got = http.get(path)
            head = http.head(path)
            assert head.status_code == got.status_code == 200, path
            assert head.content == b""
            assert head.headers["content-type"] == got.headers["content-type"], path
        missing = http.head("/jobs/nope")
        assert missing.status_code == 404 and missing.content == b""
        refused = http.head("/jobs", headers={"Authorization": "Bearer wrong"})
        assert refused.status_code == 401 and refused.content == b""
        assert http.get("/jobs").status_code == 200  # the connection is still usable


def test_a_token_revoked_from_the_cli_stops_working(
    guarded: LiveRunner, run_cli: Any, tmp_path: Path
) -> None:
    config = tmp_path / "c.json"
    config.write_text(f'{{"dbPath": "{tmp_path / "r.sqlite"}"}}')
    with httpx.Client(base_url=guarded.url, timeout=30) as http:
        assert http.get("/jobs", headers=bearer(Scope.READ)).status_code == 200
        code, out, err = run_cli("token", "revoke", "read", "-c", str(config))
        assert (code, out, err) == (0, "Revoked token 'read'.\n", "")
        wait_until(lambda: http.get("/jobs", headers=bearer(Scope.READ)).status_code == 401)
        assert http.get("/jobs", headers=bearer(Scope.ADMIN)).status_code == 200


def test_the_compare_is_constant_time(guarded: LiveRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return a == b

    monkeypatch.setattr(auth, "compare_digest", spy)
    with httpx.Client(base_url=guarded.url, timeout=30) as http:
        assert http.get("/jobs", headers=bearer(Scope.TRIGGER)).status_code == 200
    # Every stored hash is compared (no early exit at the match), each by compare_digest.
    presented = hash_secret(SECRETS[Scope.TRIGGER])
    assert sorted(a for a, _ in calls) == sorted(hash_secret(s) for s in SECRETS.values())
    assert {b for _, b in calls} == {presented}


# --- Origin ------------------------------------------------------------------------------------


@pytest.fixture
def open_runner(tmp_path: Path) -> Iterator[LiveRunner]:
    runner = LiveRunner(tmp_path, shutdownGraceMs=10_000).start()
    runner.add_job("j", "ok_with_result.py")
    try:
        yield runner
    finally:
        runner.join()


def test_loopback_without_tokens_stays_open(open_runner: LiveRunner) -> None:
    with httpx.Client(base_url=open_runner.url, timeout=30) as http:
        assert http.get("/jobs").status_code == 200
        assert http.post("/jobs/j/disable").json() == {"ok": True}
        assert http.get("/audit").status_code == 200


def test_a_mutating_request_from_another_origin_is_refused(open_runner: LiveRunner) -> None:
    port = open_runner.runner.port
    with httpx.Client(base_url=open_runner.url, timeout=30) as http:
        for origin in ("http://evil.example", "null", f"http://evil.example:{port}"):
            response = http.post("/jobs/j/disable", headers={"Origin": origin})
            assert response.status_code == 403, origin
            assert response.json() == {"error": "Requests from another web origin are refused"}
        # DNS rebinding: Host and Origin agree with each other, not with the socket.
        rebound = http.post(
            "/jobs/j/disable",
            headers={"Origin": f"http://evil.example:{port}", "Host": f"evil.example:{port}"},
        )
        assert rebound.status_code == 403
        assert http.get("/jobs/j").json()["job"]["enabled"] == 1
        # Reads carry no Origin check; the runner's own origins may change things.
        assert http.get("/jobs", headers={"Origin": "http://evil.example"}).status_code == 200
        for own in (f"http://127.0.0.1:{port}", f"http://localhost:{port}"):
            assert http.post("/jobs/j/disable", headers={"Origin": own}).status_code == 200


def test_a_foreign_origin_is_refused_even_with_an_admin_token(tmp_path: Path) -> None:
    add_tokens(tmp_path / "r.sqlite", [Scope.ADMIN])
    runner = LiveRunner(tmp_path).start()
    try:
        runner.add_job("j", "ok_with_result.py")
        with httpx.Client(base_url=runner.url, timeout=30, headers=bearer(Scope.ADMIN)) as http:
            response = http.post("/jobs/j/enable", headers={"Origin": "http://evil.example"})
            assert response.status_code == 403
            assert response.json() == {"error": "Requests from another web origin are refused"}
            # With a token, the page the operator reached by name (Host) may act.
            by_name = http.post(
                "/jobs/j/enable",
                headers={"Origin": "http://runner.lan:1937", "Host": "runner.lan:1937"},
            )
            assert by_name.status_code == 200
    finally:
        runner.join()


# --- binding ---------------------------------------------------------------------------------


def test_binding_beyond_loopback_without_a_token_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InsecureBindError) as caught:
        LiveRunner(tmp_path, host="0.0.0.0").start()
    assert str(caught.value) == (
        "refusing to listen on 0.0.0.0 without an access token: anyone who can reach it "
        "could run any job; create one first with "
        "'jeeves-runner token create NAME --scope admin -c CONFIG'"
    )


# --- audit -------------------------------------------------------------------------------------


def test_changes_over_http_are_audited_with_token_and_address(guarded: LiveRunner) -> None:
    with httpx.Client(base_url=guarded.url, timeout=30) as http:
        assert http.post("/jobs/j/disable", headers=bearer(Scope.TRIGGER)).status_code == 200
        assert http.post("/jobs/j/enable", headers=bearer(Scope.ADMIN)).status_code == 200
        assert http.post("/jobs/j/run", headers=bearer(Scope.TRIGGER)).status_code == 200
        assert http.post("/jobs/nope/run", headers=bearer(Scope.ADMIN)).status_code == 404
        entries = http.get("/audit", headers=bearer(Scope.ADMIN)).json()["entries"]
        summary = [
            (e["actor"], e["address"], e["action"], e["target"], e["after"]) for e in entries
        ]
        assert summary == [
            ("trigger", "127.0.0.1", "run.triggered", "j", {"run_id": 2}),  # run 1: the fixture
            ("admin", "127.0.0.1", "job.enabled", "j", {"enabled": 1}),
            ("trigger", "127.0.0.1", "job.disabled", "j", {"enabled": 0}),
        ]
        assert (
            http.get("/audit?limit=1", headers=bearer(Scope.ADMIN)).json()["entries"][0]["action"]
            == "run.triggered"
        )
        future = http.get("/audit?since=2999-01-01T00:00:00Z", headers=bearer(Scope.ADMIN))
        assert future.json() == {"entries": []}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "since=yesterday",
            "since must be an ISO 8601 instant with a zone, such as 2026-03-02T01:03:00Z",
        ),
        (
            "since=2026-03-02T01:00:00",
            "since must be an ISO 8601 instant with a zone, such as 2026-03-02T01:03:00Z",
        ),
        (
            "since=9999-12-31T23:59:59-05:00",
            "since must be an ISO 8601 instant with a zone, such as 2026-03-02T01:03:00Z",
        ),
        ("limit=0", "limit must be an integer from 1 to 1000"),
    ],
)
def test_bad_audit_queries_are_400s(open_runner: LiveRunner, query: str, message: str) -> None:
    with httpx.Client(base_url=open_runner.url, timeout=30) as http:
        response = http.get(f"/audit?{query}")
    assert response.status_code == 400
    assert response.json() == {"error": message}


def test_a_cancel_names_the_token_and_is_audited(guarded: LiveRunner) -> None:
    guarded.add_job("long", "sleeps.sh")
    with httpx.Client(base_url=guarded.url, timeout=30) as http:
        started = http.post("/jobs/long/run?wait=false", headers=bearer(Scope.TRIGGER))
        run_id = started.json()["run_id"]

        def running() -> bool:
            run = http.get(f"/runs/{run_id}", headers=bearer(Scope.READ)).json()["run"]
            return bool(run["status"] == "running")

        wait_for(running, "the run to start")
        cancelled = http.post(f"/runs/{run_id}/cancel", headers=bearer(Scope.TRIGGER))
        assert cancelled.status_code == 200
        assert cancelled.json()["run"]["error"] == "Cancelled through the API by token 'trigger'"

        # Both the trigger's and the cancel's entries are written in the background: under
        # load the trigger's may land last, so the cancel's is looked for, not taken as newest.
        def cancel_entries() -> list[dict[str, object]]:
            entries = http.get("/audit?limit=10", headers=bearer(Scope.ADMIN)).json()["entries"]
            return [e for e in entries if e["action"] == "run.cancelled"]

        wait_for(cancel_entries, "the cancel's audit entry")
        [entry] = cancel_entries()
        assert (entry["actor"], entry["after"]) == ("trigger", {"run_id": run_id})


_HEADER = st.tuples(
    st.sampled_from([b"authorization", b"cookie", b"origin", b"host", b"x-origin", b"cookies"]),
    st.sampled_from(
        [b"Bearer a", b"jr_session=s1", b"jr_session=s2; x=1", b"http://h", b"", b"\xe9"]
    ),
)


@given(st.lists(_HEADER, max_size=6))
def test_access_headers_are_what_starlette_headers_give(raw: list[tuple[bytes, bytes]]) -> None:
    """AccessControl reads Authorization, Cookie and Origin in one pass over the raw headers:
    each must be what Starlette's Headers.get answers (the first of its name), and the
    session secret what session_secret reads from them."""
    scope = {"type": "http", "headers": raw}
    headers = Headers(scope=scope)
    authorization, cookie, origin = _access_headers(scope)
    assert authorization == headers.get("authorization")
    assert cookie == headers.get("cookie")
    assert origin == headers.get("origin")
    assert secret_of_cookie(cookie) == session_secret(headers)
