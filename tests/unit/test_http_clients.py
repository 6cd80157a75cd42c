"""httpx clients are built in a worker thread, never on the event loop (loading TLS
certificates costs 0.1-0.2 s of CPU that would hold up fires and requests)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest

from jeeves_runner import http_clients
from jeeves_runner.http_clients import SharedClient, new_async_client


@pytest.fixture
def built_on(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    threads: list[int] = []

    class Recording(httpx.AsyncClient):
        def __init__(self, **options: Any) -> None:
            threads.append(threading.get_ident())
            super().__init__(**options)

    monkeypatch.setattr(http_clients.httpx, "AsyncClient", Recording)
    return threads


def test_a_client_is_built_off_the_loop_thread(built_on: list[int]) -> None:
    async def main() -> httpx.Timeout:
        async with await new_async_client(timeout=httpx.Timeout(3.0)) as client:
            return client.timeout

    assert asyncio.run(main()) == httpx.Timeout(3.0)
    assert len(built_on) == 1 and built_on[0] != threading.get_ident()


def test_a_shared_client_is_made_once_for_concurrent_first_uses(built_on: list[int]) -> None:
    async def main() -> tuple[bool, bool]:
        shared = SharedClient()
        first, second = await asyncio.gather(shared.get(), shared.get())
        await shared.aclose()
        return first is second, first.is_closed

    assert asyncio.run(main()) == (True, True)
    assert len(built_on) == 1 and built_on[0] != threading.get_ident()


def test_a_primed_client_is_begun_at_once_and_closed_even_if_never_used(
    built_on: list[int],
) -> None:
    async def main() -> bool:
        shared = SharedClient()
        shared.prime()
        shared.prime()  # once
        await shared.aclose()  # before any use: still made, and closed
        return len(built_on) == 1

    assert asyncio.run(main())
    assert built_on[0] != threading.get_ident()
    SharedClient().prime()  # no loop here: nothing begun, no error
    assert len(built_on) == 1
