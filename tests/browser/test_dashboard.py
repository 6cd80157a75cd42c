"""The dashboard in a real Chromium against a real runner with real jobs and real tokens."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_shots import screenshots

from jeeves_runner.access_model import Scope, StoredToken
from jeeves_runner.auth import hash_secret, new_secret
from jeeves_runner.models import Job, format_instant
from jeeves_runner.store import SqliteStore
from live_runner import LiveRunner

pytestmark = pytest.mark.slow

LONG_AGO = "2020-01-01T00:00:00.000Z"
NEVER = "0 0 1 1 *"


class Site:
    def __init__(self, runner: LiveRunner, tokens: dict[str, str]) -> None:
        self.runner = runner
        self.url = runner.url
        self.tokens = tokens

    def api(self, scope: str = "admin") -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.tokens[scope]}"}, timeout=30
        )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("dashboard")
    # Tokens exist before the runner starts, as `token create` would have made them.
    first = SqliteStore(folder / "r.sqlite")
    tokens = {}
    for scope in Scope:
        secret = new_secret()
        first.tokens.create_token(
            StoredToken(scope.value, scope, hash_secret(secret), LONG_AGO, "test")
        )
        tokens[scope.value] = secret
    first.close()
    runner = LiveRunner(folder).start()
    store = runner.runner.sync_store
    runner.add_job("alpha", "sleeps.sh", args=("0",), tags=("nightly",))
    runner.add_job("broken", "fails.sh")
    runner.add_job("fresh", "sleeps.sh", args=("0",))
    runner.add_job("paused", "sleeps.sh", args=("0",), enabled=False)
    runner.add_job("slow", "sleeps.sh", args=("3",))
    # Made long ago, due once a year: its fire of 2021 never came.
    store.jobs.add_job(Job(id="tardy", name="Tardy", schedule=NEVER, script="/bin/true"), LONG_AGO)
    # A line every quarter second for 2 s: long enough to be followed while it runs.
    runner.add_job(
        "printer",
        "",
        command=("/bin/sh", "-c", "for i in 1 2 3 4 5 6 7 8; do echo line $i; sleep 0.25; done"),
    )
    made = Site(runner, tokens)
    with made.api() as client:
        for job_id in ("alpha", "alpha", "broken"):
            client.post(f"/jobs/{job_id}/run").raise_for_status()
    try:
        yield made
    finally:
        runner.join()


@pytest.fixture
def page(browser: Any, site: Site) -> Iterator[Any]:
    """A page logged in with the admin token (its session cookie set directly)."""
    context = browser.new_context(base_url=site.url)
    context.add_cookies([{"name": "jr_session", "value": site.tokens["admin"], "url": site.url}])
    opened = context.new_page()
    try:
        yield opened
    finally:
        context.close()


def shoot(browser: Any, site: Site, shots: Path | None, path: str, name: str) -> None:
    """Light, dark and phone-width screenshots of one page, in one admin context."""
    screenshots(browser, site.url, shots, path, name, site.tokens["admin"])


def badge(page: Any, job_id: str) -> Any:
    return page.locator(f"#job-{job_id} .badge")


def wait_for(check: Callable[[], bool], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_the_jobs_page_lists_every_job_with_its_badge(
    page: Any, site: Site, browser: Any, shots_dir: Path | None
) -> None:
    from playwright.sync_api import expect

    page.goto("/ui")
    expected = {
        "alpha": "ok",
        "broken": "failing",
        "fresh": "new",
        "paused": "disabled",
        "tardy": "late",
    }
    for job_id, state in expected.items():
        expect(badge(page, job_id)).to_have_text(re.compile(rf"\b{state}$"))
    row = page.locator("#job-alpha")
    expect(row).to_contain_text("nightly")
    expect(row).to_contain_text("100 %")
    expect(page.locator("#job-broken")).to_contain_text("0 %")
    expect(row.locator("svg.spark")).to_have_attribute("aria-label", "last 2 runs: 2 ok, 0 failed")
    shoot(browser, site, shots_dir, "/ui", "jobs")


def test_times_show_the_browsers_zone_beside_the_runners(browser: Any, site: Site) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(base_url=site.url, timezone_id="Asia/Tokyo", locale="en-GB")
    context.add_cookies([{"name": "jr_session", "value": site.tokens["read"], "url": site.url}])
    page = context.new_page()
    try:
        page.goto("/ui/jobs/alpha")
        first = page.locator("ol.fires li").first
        expect(first.locator("time")).to_have_text("2027-01-01 00:00:00 UTC")
        expect(first.locator(".local")).to_have_text("yours: 01/01/2027, 09:00:00 GMT+9")
        expect(page.locator("footer")).to_contain_text("yours: Asia/Tokyo")
    finally:
        context.close()


def test_search_and_filter_and_bad_parameters(page: Any) -> None:
    from playwright.sync_api import expect

    page.goto("/ui")
    # By keyboard alone: the search field, then Enter.
    page.get_by_label("Search").focus()
    page.keyboard.type("NIGHTLY")
    page.keyboard.press("Enter")
    expect(page.locator("tbody#job-rows tr")).to_have_count(1)
    expect(page.locator("#job-alpha")).to_be_visible()
    page.goto("/ui/jobs?status=failing")
    expect(page.locator("tbody#job-rows tr")).to_have_count(1)
    expect(page.locator("#job-broken")).to_be_visible()
    response = page.goto("/ui/jobs?status=sideways&page=2")
    assert response.status == 400
    expect(page.locator("p.message")).to_have_text(
        "status must be one of ok, new, failing, running, late, disabled (got 'sideways')."
    )


def test_run_makes_a_new_run_appear_without_a_reload(page: Any, site: Site) -> None:
    from playwright.sync_api import expect

    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.goto("/ui")
    expect(badge(page, "slow")).to_have_text(re.compile("new$"))
    page.evaluate("window.__still_here = true")
    started = time.monotonic()
    page.get_by_role("button", name="Run slow now").click()
    expect(page.locator("#flash")).to_contain_text(re.compile(r"Run \d+ of slow started\."))
    expect(badge(page, "slow")).to_have_text(re.compile("running$"), timeout=2000)
    assert time.monotonic() - started < 2.5
    expect(badge(page, "slow")).to_have_text(re.compile("ok$"), timeout=15000)
    assert page.evaluate("window.__still_here") is True  # no reload happened
    assert console_errors == []  # nothing refused by the Content-Security-Policy, no JS error


def test_disable_changes_the_badge_and_the_api_agrees(page: Any, site: Site) -> None:
    from playwright.sync_api import expect

    page.goto("/ui")
    page.get_by_role("button", name="Disable fresh").click()
    expect(badge(page, "fresh")).to_have_text(re.compile("disabled$"))
    with site.api("read") as client:
        assert client.get("/jobs/fresh").json()["job"]["enabled"] == 0
    page.get_by_role("button", name="Enable fresh").click()
    expect(badge(page, "fresh")).to_have_text(re.compile("new$"))
    with site.api("read") as client:
        assert client.get("/jobs/fresh").json()["job"]["enabled"] == 1


def test_with_javascript_off_the_forms_still_work(browser: Any, site: Site) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(base_url=site.url, java_script_enabled=False)
    context.add_cookies([{"name": "jr_session", "value": site.tokens["admin"], "url": site.url}])
    page = context.new_page()
    try:
        page.goto("/ui/jobs?q=fresh")
        page.get_by_role("button", name="Disable fresh").click()  # a plain post, then back
        expect(page).to_have_url(re.compile(r"/ui/jobs\?q=fresh$"))
        expect(badge(page, "fresh")).to_have_text(re.compile("disabled$"))
        page.get_by_role("button", name="Enable fresh").click()
        expect(badge(page, "fresh")).to_have_text(re.compile("new$"))
    finally:
        context.close()


def test_the_run_page_shows_the_run_as_it_goes(
    page: Any, site: Site, browser: Any, shots_dir: Path | None
) -> None:
    from playwright.sync_api import expect

    with site.api("trigger") as client:
        response = client.post("/jobs/printer/run", params={"wait": "false"})
        assert response.status_code == 202
        run_id = response.json()["run_id"]
    page.goto(f"/ui/runs/{run_id}")
    status = page.locator("#run-status .badge")
    expect(status).to_have_text(re.compile("(pending|running)$"))
    if page.locator("#log[data-follow]").count():
        # Runs can be followed (issue 11): lines arrive while the child still prints.
        expect(page.locator("#log")).to_contain_text("line 2")
        expect(status).to_have_text(re.compile("running$"))
    expect(status).to_have_text(re.compile("ok$"), timeout=15000)
    expect(page.locator("pre.log").first).to_contain_text("line 8")
    shoot(browser, site, shots_dir, f"/ui/runs/{run_id}", "run")


def test_the_job_page_shows_definition_fires_and_history(
    page: Any, site: Site, browser: Any, shots_dir: Path | None
) -> None:
    from playwright.sync_api import expect

    page.goto("/ui/jobs/alpha")
    expect(page.locator("dl.def")).to_contain_text("sleeps.sh")
    expect(page.locator("ol.fires li")).to_have_count(10)
    expect(page.locator("#job-runs tbody tr")).to_have_count(2)
    page.goto("/ui/jobs/broken?status=error")
    expect(page.locator("#job-runs tbody tr")).to_have_count(1)
    expect(page.locator("#job-runs")).to_contain_text("something broke")
    response = page.goto("/ui/jobs/broken?before=soon")
    assert response.status == 400
    expect(page.locator("p.message")).to_have_text("before must be a run id (a whole number).")
    shoot(browser, site, shots_dir, "/ui/jobs/broken", "job")
    shoot(browser, site, shots_dir, "/ui/jobs/alpha/edit", "edit")


def test_delete_asks_first_then_deletes(page: Any, site: Site) -> None:
    from playwright.sync_api import expect

    site.runner.add_job("doomed", "sleeps.sh")
    page.goto("/ui/jobs/doomed")
    page.get_by_role("link", name="Delete…").click()
    expect(page.get_by_role("heading")).to_have_text("Delete doomed?")
    page.get_by_role("button", name="Delete doomed").click()
    expect(page).to_have_url(re.compile(r"/ui$"))
    expect(page.locator("#job-doomed")).to_have_count(0)
    with site.api("read") as client:
        assert client.get("/jobs/doomed").status_code == 404


def test_a_read_token_logs_in_and_sees_no_buttons(browser: Any, site: Site) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(base_url=site.url)
    page = context.new_page()
    try:
        page.goto("/ui/jobs/alpha")
        expect(page).to_have_url(re.compile(r"/ui/login\?next=/ui/jobs/alpha$"))
        page.get_by_label("Access token").fill("jr_not-a-token")
        page.get_by_role("button", name="Log in").click()
        expect(page.locator("[role=alert]")).to_have_text("That token is not valid.")
        page.get_by_label("Access token").fill(site.tokens["read"])
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(re.compile(r"/ui/jobs/alpha$"))
        expect(page.locator("dl.def")).to_be_visible()
        assert page.get_by_role("button").all_inner_texts() == ["Log out", "Filter"]
        page.goto("/ui")
        expect(page.locator("#job-alpha")).to_be_visible()
        assert page.locator("main button").all_inner_texts() == ["Filter"]
        response = page.goto("/ui/audit")
        assert response.status == 403
        expect(page.locator("p.message")).to_have_text(
            "The token 'read' has scope read; this needs admin."
        )
        cookie = next(c for c in context.cookies() if c["name"] == "jr_session")
        assert (cookie["httpOnly"], cookie["sameSite"]) == (True, "Strict")
    finally:
        context.close()


def test_a_post_without_the_csrf_token_is_refused(page: Any, site: Site) -> None:
    page.goto("/ui")
    token = page.locator("input[name=csrf]").first.get_attribute("value")
    origin = {"Origin": site.url}
    refused = page.request.post("/ui/jobs/paused/enable", form={"back": "/ui"}, headers=origin)
    assert refused.status == 403
    assert "This form has no valid CSRF token: reload the page and try again." in refused.text()
    forged = page.request.post("/ui/jobs/paused/enable", form={"csrf": "0" * 64}, headers=origin)
    assert forged.status == 403
    with site.api("read") as client:
        assert client.get("/jobs/paused").json()["job"]["enabled"] == 0
    accepted = page.request.post(
        "/ui/jobs/paused/enable",
        form={"csrf": token, "back": "/ui"},
        headers=origin,
        max_redirects=0,
    )
    assert accepted.status == 303
    with site.api() as client:
        assert client.get("/jobs/paused").json()["job"]["enabled"] == 1
        client.post("/jobs/paused/disable").raise_for_status()


def test_queues_state_and_audit_pages(
    page: Any, site: Site, browser: Any, shots_dir: Path | None
) -> None:
    from playwright.sync_api import expect

    store = site.runner.runner.sync_store
    now = format_instant(site.runner.runner.clock.now())
    for n in range(3):
        store.queues.enqueue("mail", f'{{"to": "user{n}@example.org"}}', 0, None, now)
    (item,) = store.queues.claim("mail", 1, now)
    store.queues.fail(item.id, "SMTP 550: mailbox unavailable", now)
    store.state.set("deploys", "last", '"v1.4.2"', None, now)
    page.goto("/ui/queues")
    expect(page.locator("main tbody tr").first).to_contain_text("mail")
    expect(page.locator("main")).to_contain_text("SMTP 550: mailbox unavailable")
    page.goto("/ui/state")
    page.get_by_role("link", name="deploys").click()
    expect(page.locator("main table")).to_contain_text("v1.4.2")
    page.goto("/ui/audit")
    expect(page.locator("main table")).to_contain_text("job.disabled")
    for path, name in (
        ("/ui/queues", "queues"),
        ("/ui/state?ns=deploys", "state"),
        ("/ui/audit", "audit"),
    ):
        shoot(browser, site, shots_dir, path, name)
