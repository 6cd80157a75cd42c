"""The API tier: a real server on 127.0.0.1 over a real SQLite store, talked to with httpx.

`control` is the one fixture that decides what stands behind the API. Today that is
FakeControl (a scripted `trigger` over the real store); swapping in the real runner means
changing that fixture alone.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fake_control import NOW, FakeControl
from live_api import LiveApi

from jeeves_runner.api.app import create_app
from jeeves_runner.clock import FakeClock
from jeeves_runner.store import SqliteStore

CLIENT_TIMEOUT_S = 10.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def control(store: SqliteStore, clock: FakeClock) -> Iterator[FakeControl]:
    fake = FakeControl(store, clock)
    try:
        yield fake
    finally:
        fake.release_all()  # no run is left waiting on a gate when the server stops
        fake.gateway.close()


@pytest.fixture
def live_api(control: FakeControl, clock: FakeClock) -> Iterator[LiveApi]:
    with LiveApi(create_app(control, clock=clock)) as api:
        yield api


@pytest.fixture
def client(live_api: LiveApi) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_api.url, timeout=CLIENT_TIMEOUT_S) as http:
        yield http
