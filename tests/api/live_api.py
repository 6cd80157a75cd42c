"""The API on a real socket (ApiServer on 127.0.0.1, port 0, in a thread with its own loop),
and helpers for requests that block."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

import httpx
import pytest
from starlette.applications import Starlette

from jeeves_runner.api.server import ApiServer

T = TypeVar("T")
WAIT_LIMIT_S = 10.0
START_LIMIT_S = 10.0
STOP_LIMIT_S = 30.0


class LiveApi:
    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.server = ApiServer(app, "127.0.0.1", 0, drain_timeout_s=5)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="live-api", daemon=True)

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return self.server.url

    def run(self, work: Callable[[], Awaitable[T]], timeout: float = STOP_LIMIT_S) -> T:
        """Run a coroutine on the server's loop and wait for its result."""

        async def wrapped() -> T:
            return await work()

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(timeout)

    def __enter__(self) -> LiveApi:
        self._thread.start()
        try:
            self.run(self.server.start, START_LIMIT_S)
        except BaseException:
            self._end_loop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.run(self.server.stop)
        finally:
            self._end_loop()

    def _end_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(STOP_LIMIT_S)
        self.loop.close()


def wait_for(condition: Any, what: str) -> None:
    """Poll `condition()` until true, failing after WAIT_LIMIT_S."""
    done = threading.Event()
    deadline = threading.Timer(WAIT_LIMIT_S, done.set)
    deadline.start()
    try:
        while not condition():
            if done.wait(0.01):
                pytest.fail(f"gave up waiting for {what}")
    finally:
        deadline.cancel()


class Background:
    """A request sent from another thread, for routes that block."""

    def __init__(self, url: str, method: str, path: str) -> None:
        self.response: httpx.Response | None = None
        self._thread = threading.Thread(target=self._send, args=(url, method, path))
        self._thread.start()

    def _send(self, url: str, method: str, path: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            self.response = http.request(method, path)

    def result(self) -> httpx.Response:
        self._thread.join(30)
        assert self.response is not None, "the request did not finish"
        return self.response

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()
