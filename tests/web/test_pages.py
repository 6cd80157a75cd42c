"""The dashboard over plain HTTP against the real runner (no browser): redirects, access,
CSRF, and bad query parameters answered with a message page, never a 500."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jeeves_runner.access_model import Scope, StoredToken
from jeeves_runner.api.app import create_app
from jeeves_runner.auth import hash_secret
from jeeves_runner.models import RunResult, RunStatus, RunTrigger
from jeeves_runner.store import SqliteStore
from jeeves_runner.store.errors import DatabaseBusyError
from live_runner import LiveRunner

SECRETS = {scope: f"jr_page-test-secret-{scope.value}" for scope in Scope}
T0 = "2026-03-02T01:00:00.000Z"


def cookie(scope: Scope) -> dict[str, str]:
    return {"Cookie": f"jr_session={SECRETS[scope]}"}


def message(response: httpx.Response) -> str:
    found = re.search(r'<p class="message">(.*?)</p>', response.text)
    assert found, response.text[:500]
    return found.group(1).replace("&#39;", "'")


@pytest.fixture(scope="module")
def open_runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRunner]:
    runner = LiveRunner(tmp_path_factory.mktemp("open")).start()
    runner.add_job("j", "ok_with_result.py")
    try:
        yield runner
    finally:
        runner.join()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRunner]:
    folder = tmp_path_factory.mktemp("guarded")
    store = SqliteStore(folder / "r.sqlite")
    for scope in Scope:
        store.tokens.create_token(
            StoredToken(scope.value, scope, hash_secret(SECRETS[scope]), T0, "test")
        )
    store.close()
    runner = LiveRunner(folder).start()
    runner.add_job("j", "ok_with_result.py")
    try:
        yield runner
    finally:
        runner.join()


def test_the_root_redirects_to_the_dashboard(open_runner: LiveRunner) -> None:
    with httpx.Client(base_url=open_runner.url) as http:
        response = http.get("/")
        assert (response.status_code, response.headers["location"]) == (303, "/ui")
        page = http.get("/ui")
        assert page.status_code == 200
        assert 'id="job-j"' in page.text
        assert "Run j now" in page.text  # open on loopback: every button


@pytest.mark.parametrize(
    ("path", "status", "text"),
    [
        (
            "/ui/jobs?status=sideways",
            400,
            "status must be one of ok, new, failing, running, late, disabled (got 'sideways').",
        ),
        ("/ui/jobs?page=0", 400, "page must be a whole number from 1 to 100000."),
        ("/ui/jobs?page=%F0%9F%98%80", 400, "page must be a whole number from 1 to 100000."),
        (f"/ui/jobs?q={'x' * 201}", 400, "The search text is longer than 200 characters."),
        ("/ui/jobs/rows?page=-1", 400, "page must be a whole number from 1 to 100000."),
        (
            "/ui/jobs/j?status=done",
            400,
            "status must be one of pending, running, ok, error, timeout, skipped, cancelled, missed"
            " (got 'done').",
        ),
        ("/ui/jobs/j?before=1e9", 400, "before must be a run id (a whole number)."),
        ("/ui/jobs/nope", 404, "There is no job 'nope'."),
        ("/ui/runs/abc", 400, "A run id is a whole number."),
        ("/ui/runs/99999", 404, "There is no run 99999."),
        (f"/ui/state?ns={'n' * 201}", 400, "ns is longer than 200 characters."),
    ],
)
def test_bad_input_is_a_message_page(
    open_runner: LiveRunner, path: str, status: int, text: str
) -> None:
    with httpx.Client(base_url=open_runner.url) as http:
        response = http.get(path)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert message(response) == text


def test_an_unchanged_list_answers_204_to_its_poll(open_runner: LiveRunner) -> None:
    with httpx.Client(base_url=open_runner.url) as http:
        page = http.get("/ui").text
        rows_url = re.search(r'hx-get="([^"]+)"', page)
        assert rows_url
        url = rows_url.group(1).replace("&amp;", "&")
        assert http.get(url).status_code == 204
        assert http.get(url.replace("v=", "v=stale")).status_code == 200


def test_without_a_token_the_pages_send_to_the_login(guarded: LiveRunner) -> None:
    with httpx.Client(base_url=guarded.url) as http:
        response = http.get("/ui/jobs/j?status=ok")
        assert response.status_code == 303
        assert response.headers["location"] == "/ui/login?next=/ui/jobs/j%3Fstatus%3Dok"
        assert http.get("/ui/login").status_code == 200
        assert http.get("/ui/static/htmx.min.js").status_code == 200
        refused = http.post("/ui/jobs/j/run", data={"csrf": "x"})
        assert (refused.status_code, message(refused)) == (
            401,
            "A token is required: log in first.",
        )
        bad = http.post("/ui/login", data={"token": "jr_wrong", "next": "/ui"})
        assert bad.status_code == 401
        assert "That token is not valid." in bad.text


def test_login_sets_a_strict_http_only_cookie_and_never_redirects_away(guarded: LiveRunner) -> None:
    with httpx.Client(base_url=guarded.url) as http:
        response = http.post(
            "/ui/login", data={"token": SECRETS[Scope.READ], "next": "https://evil.example/"}
        )
    assert response.status_code == 303
    assert response.headers["location"] == "/ui"
    assert response.headers["set-cookie"] == (
        f"jr_session={SECRETS[Scope.READ]}; Path=/; HttpOnly; SameSite=Strict"
    )


def test_scopes_are_the_apis(guarded: LiveRunner) -> None:
    with httpx.Client(base_url=guarded.url) as http:
        read = http.get("/ui", headers=cookie(Scope.READ))
        assert read.status_code == 200
        assert "Run j now" not in read.text and 'id="job-j"' in read.text
        csrf = re.search(
            r'name="csrf" value="([0-9a-f]+)"', http.get("/ui", headers=cookie(Scope.TRIGGER)).text
        )
        assert csrf
        assert http.get("/ui/audit", headers=cookie(Scope.TRIGGER)).status_code == 403
        assert http.get("/ui/audit", headers=cookie(Scope.ADMIN)).status_code == 200
        denied = http.post("/ui/jobs/j/disable", headers=cookie(Scope.READ), data={"csrf": "x"})
        assert (denied.status_code, message(denied)) == (
            403,
            "The token 'read' has scope read; this needs trigger.",
        )
        # The trigger token's CSRF token is its own: the read session cannot reuse it.
        done = http.post(
            "/ui/jobs/j/disable", headers=cookie(Scope.TRIGGER), data={"csrf": csrf.group(1)}
        )
        assert done.status_code == 303
        assert (
            http.get("/jobs/j", headers={"Authorization": f"Bearer {SECRETS[Scope.READ]}"}).json()[
                "job"
            ]["enabled"]
            == 0
        )
        again = http.post(
            "/ui/jobs/j/enable", headers=cookie(Scope.ADMIN), data={"csrf": csrf.group(1)}
        )
        assert (again.status_code, message(again)) == (
            403,
            "This form has no valid CSRF token: reload the page and try again.",
        )


def test_the_cookie_counts_for_api_reads_only(guarded: LiveRunner) -> None:
    with httpx.Client(base_url=guarded.url) as http:
        assert http.get("/jobs", headers=cookie(Scope.ADMIN)).status_code == 200
        response = http.post("/jobs/j/disable", headers=cookie(Scope.ADMIN))
        assert response.status_code == 401
        assert response.json() == {"error": "A valid token is required"}


def test_a_form_from_another_origin_is_refused(guarded: LiveRunner) -> None:
    with httpx.Client(base_url=guarded.url) as http:
        response = http.post(
            "/ui/jobs/j/run",
            headers={**cookie(Scope.ADMIN), "Origin": "https://evil.example"},
            data={"csrf": "x"},
        )
    assert response.status_code == 403
    assert response.json() == {"error": "Requests from another web origin are refused"}


def test_the_edit_form_checks_like_the_api_and_saves(open_runner: LiveRunner) -> None:
    with httpx.Client(base_url=open_runner.url) as http:
        form_page = http.get("/ui/jobs/j/edit")
        assert form_page.status_code == 200
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', form_page.text)
        assert csrf
        fields = {
            "csrf": csrf.group(1),
            "name": "Renamed",
            "schedule": "0 0 31 2 *",
            "script": str(Path(__file__).resolve().parent.parent / "scripts" / "sleeps.sh"),
            "args": "'1 2'",
            "timeout_ms": "5000",
            "overlap_policy": "queue",
            "tags": "a, b",
        }
        refused = http.post("/ui/jobs/j/edit", data=fields)
        assert refused.status_code == 400
        assert "schedule: This schedule never fires." in refused.text
        assert 'value="Renamed"' in refused.text  # what was typed stays
        bad_timeout = http.post("/ui/jobs/j/edit", data={**fields, "timeout_ms": "soon"})
        assert "timeout_ms: must be a whole number of milliseconds" in bad_timeout.text
        saved = http.post("/ui/jobs/j/edit", data={**fields, "schedule": "5 4 * * *"})
        assert (saved.status_code, saved.headers["location"]) == (303, "/ui/jobs/j")
        job = http.get("/jobs/j").json()["job"]
    assert (job["name"], job["schedule"], job["args"], job["timeout_ms"]) == (
        "Renamed",
        "5 4 * * *",
        ["1 2"],
        5000,
    )
    assert (job["overlap_policy"], job["tags"]) == ("queue", ["a", "b"])


def test_a_poll_without_a_session_sends_the_page_to_the_login(guarded: LiveRunner) -> None:
    with httpx.Client(base_url=guarded.url) as http:
        response = http.get("/ui/jobs/rows?v=x", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.headers["hx-redirect"] == "/ui/login?next=/ui"


def test_a_huge_or_garbled_form_is_a_message(open_runner: LiveRunner) -> None:
    with httpx.Client(base_url=open_runner.url) as http:
        huge = http.post("/ui/jobs/j/run", content=b"csrf=" + b"x" * 300_000)
        assert (huge.status_code, message(huge)) == (413, "The form is too large.")
        garbled = http.post("/ui/jobs/j/run", content=b"csrf=\xff\xfe")
        assert (garbled.status_code, message(garbled)) == (400, "The form is not UTF-8 text.")


class BusyGateway:
    """A store gateway whose reads fail as a database locked by another process does."""

    async def probe(self, fn: Any) -> int:
        return 1

    async def read(self, fn: Any) -> Any:
        raise DatabaseBusyError("The database is busy; try again")


class BusyControl:
    store = BusyGateway()

    def data_version(self, store: Any) -> int:
        return 1


def test_a_busy_database_is_a_message_page_not_json() -> None:
    app = create_app(BusyControl())  # type: ignore[arg-type]

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            return await http.get("/ui/jobs/j")

    response = asyncio.run(get())
    assert response.status_code == 503
    assert message(response) == "The database is busy; try again."


def test_a_run_page_links_the_tries_of_its_first_run(open_runner: LiveRunner) -> None:
    open_runner.add_job("r", "ok_with_result.py")
    store = open_runner.runner.sync_store
    at = "2026-03-02T01:00:00.000Z"
    result = RunResult(status=RunStatus.ERROR, exit_code=1, duration_ms=5, stdout="", stderr="")
    first, second, third = (
        store.runs.create_run("r", RunTrigger.SCHEDULE, RunStatus.RUNNING, at) for _ in range(3)
    )
    missed = store.runs.create_run("r", RunTrigger.SCHEDULE, RunStatus.MISSED, at)
    for run_id in (first, second, third):
        store.runs.finish_run(run_id, result, at)
    db: Any = getattr(store, "db")  # noqa: B009 - no verb writes a retry's row yet
    with db.transaction() as conn:
        conn.execute("UPDATE runs SET scheduled_for = ? WHERE id = ?", (at, first))
        for run_id, attempt in ((second, 2), (third, 3)):
            conn.execute(
                "UPDATE runs SET attempt = ?, retry_of = ?, node_id = 'n1' WHERE id = ?",
                (attempt, first, run_id),
            )
        conn.execute(
            "UPDATE runs SET missed_count = 7, missed_first = ?, missed_last = ? WHERE id = ?",
            (at, "2026-03-02T01:06:00.000Z", missed),
        )
    with httpx.Client(base_url=open_runner.url) as http:
        page = http.get(f"/ui/runs/{second}").text
        first_page = http.get(f"/ui/runs/{first}").text
        missed_page = http.get(f"/ui/runs/{missed}").text
    assert "attempt 2" in page
    assert f'data-follow="/runs/{second}/log?follow=true"' in page  # the log, not the row's tail
    assert f'<a href="/ui/runs/{first}">first try #{first}</a>' in page
    assert f'<span aria-current="page">#{second} attempt 2</span>' in page
    assert f'<a href="/ui/runs/{third}">#{third} attempt 3</a>' in page
    assert "<dt>Node</dt><dd>n1</dd>" in page  # no cluster here: the node, not a link
    # The first try links its retries; it has no "retry of", and shows its due instant.
    assert f'<a href="/ui/runs/{second}">#{second} attempt 2</a>' in first_page
    assert "first try #" not in first_page and "<dt>Scheduled for</dt>" in first_page
    assert "attempt 1" in first_page
    assert re.search(r"<dt>Missed</dt><dd>7 fires, <time[^>]*>[^<]+</time> to <time", missed_page)
    assert "<dt>Tries</dt>" not in missed_page


def test_without_cluster_mode_the_cluster_page_says_so(open_runner: LiveRunner) -> None:
    with httpx.Client(base_url=open_runner.url) as http:
        nav = http.get("/ui").text
        page = http.get("/ui/cluster")
    assert 'href="/ui/cluster"' not in nav
    assert page.status_code == 200
    assert message(page).startswith("This runner is not in cluster mode")
