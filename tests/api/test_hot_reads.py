"""GET /jobs and GET /jobs/:id/runs are answered by `api.hot_reads.HotReads`, past FastAPI's
router: the same status, headers and bytes as the routed answer, for good requests and bad
ones alike. Two real servers over one store, one app with the lean path and one without."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from fake_control import NOW, FakeControl
from live_api import LiveApi
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jeeves_runner.api.app import create_app, error_response
from jeeves_runner.api.hot_reads import HotReads
from jeeves_runner.clock import FakeClock
from jeeves_runner.models import RunStatus

REQUESTS = [
    ("GET", "/jobs"),
    ("HEAD", "/jobs"),
    ("GET", "/jobs?tag=night"),
    ("GET", "/jobs?tag=none"),
    ("GET", "/jobs/sync/runs"),
    ("GET", "/jobs/sync/runs?limit=2"),
    ("GET", "/jobs/sync/runs?limit=2&before=3"),
    ("GET", "/jobs/sync/runs?status=error&status=ok"),
    ("HEAD", "/jobs/sync/runs?limit=1"),
    ("GET", "/jobs/idle/runs"),
    ("GET", "/jobs/gone/runs"),
    ("GET", "/jobs/sync/runs?limit=0"),
    ("GET", "/jobs/sync/runs?limit=x"),
    ("GET", "/jobs/sync/runs?status=bogus"),
    ("GET", "/jobs/sync/runs?before=-1"),
    ("GET", "/jobs//runs"),
    ("GET", "/jobs/a%2Fb/runs"),
    ("GET", "/jobs/"),
    ("GET", "/jobs/sync/runs/"),
]


@pytest.fixture
def routed(control: FakeControl, clock: FakeClock) -> Iterator[httpx.Client]:
    app = create_app(control, clock=clock)
    app.fast_path = None  # type: ignore[attr-defined]
    with LiveApi(app) as api, httpx.Client(base_url=api.url) as http:
        yield http


@pytest.fixture
def with_history(control: FakeControl) -> None:
    control.add_job("sync", tags=("night",))
    control.add_job("idle")
    for minutes, status in ((9, RunStatus.OK), (7, RunStatus.ERROR), (5, RunStatus.TIMEOUT)):
        started = NOW - timedelta(minutes=minutes)
        control.add_run("sync", status, started, started + timedelta(seconds=1))
    control.add_run("sync", RunStatus.RUNNING, NOW - timedelta(seconds=3))


@pytest.mark.usefixtures("with_history")
@pytest.mark.parametrize(("method", "path"), REQUESTS)
def test_the_lean_answer_is_the_routed_one(
    client: httpx.Client, routed: httpx.Client, method: str, path: str
) -> None:
    lean, full = client.request(method, path), routed.request(method, path)
    assert (lean.status_code, lean.content) == (full.status_code, full.content)
    assert without_date(lean.headers) == without_date(full.headers)


def without_date(headers: httpx.Headers) -> list[tuple[str, str]]:
    return sorted((k, v) for k, v in headers.multi_items() if k != "date")


@pytest.mark.usefixtures("with_history")
def test_the_router_is_not_asked(control: FakeControl) -> None:
    """The two reads never reach what HotReads wraps; anything else does."""
    asked: list[str] = []

    async def router(scope: Scope, receive: Receive, send: Send) -> None:
        asked.append(scope["path"])

    hot = HotReads(router, answer=error_response)
    app = create_app(control)
    sent: list[int] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            sent.append(int(message["status"]))

    async def ask(path: str) -> None:
        scope: Scope = {
            "type": "http",
            "method": "GET",
            "path": path,
            "query_string": b"",
            "headers": [],
            "app": app,
        }
        await hot(scope, receive, send)

    for path in ("/jobs", "/jobs/sync/runs", "/jobs/sync", "/runs"):
        asyncio.run(ask(path))
    assert asked == ["/jobs/sync", "/runs"]
    assert sent == [200, 200]


@pytest.mark.usefixtures("with_history")
def test_the_two_reads_skip_the_middleware_stack(control: FakeControl, clock: FakeClock) -> None:
    """GET /jobs and GET /jobs/:id/runs are answered before Starlette's middleware stack;
    HEAD of them and every other route go through it."""
    app = create_app(control, clock=clock)
    seen: list[str] = []

    class Recorder:
        def __init__(self, inner: ASGIApp) -> None:
            self.inner = inner

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                seen.append(f"{scope['method']} {scope['path']}")
            await self.inner(scope, receive, send)

    app.add_middleware(Recorder)
    with LiveApi(app) as api, httpx.Client(base_url=api.url) as http:
        for method, path in (
            ("GET", "/jobs"),
            ("GET", "/jobs/sync/runs"),
            ("HEAD", "/jobs"),
            ("GET", "/jobs/sync"),
        ):
            assert http.request(method, path).status_code == 200
    assert seen == ["HEAD /jobs", "GET /jobs/sync"]
