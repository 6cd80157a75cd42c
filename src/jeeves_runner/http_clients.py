"""httpx clients made off the event loop.

Building an `httpx.AsyncClient` loads the TLS certificates (0.1-0.2 s of CPU), and its first
request imports anyio's modules (another ~0.1 s): on the loop, either would hold up every
fire and request for that long. `new_async_client` does both in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from typing import Any

import httpx

_FIRST_REQUEST_IMPORTS = (
    "anyio._backends._asyncio",
    "anyio.lowlevel",
    "anyio.streams.tls",
    "anyio.to_thread",
)


async def new_async_client(**options: Any) -> httpx.AsyncClient:
    """`httpx.AsyncClient(**options)`, built in a thread."""
    return await asyncio.to_thread(_made, options)


def _made(options: dict[str, Any]) -> httpx.AsyncClient:
    for module in _FIRST_REQUEST_IMPORTS:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    return httpx.AsyncClient(**options)


class SharedClient:
    """One client for a sender's lifetime, made in a thread at the first use (concurrent
    first uses wait for the same one)."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._made: asyncio.Future[httpx.AsyncClient] | None = None
        self._client: httpx.AsyncClient | None = None

    def prime(self) -> None:
        """Begin making the client now, if an event loop runs here (else at the first use)."""
        if self._made is None and self._client is None:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return
            self._made = asyncio.ensure_future(new_async_client(**self._options))

    async def get(self) -> httpx.AsyncClient:
        if self._client is None:
            if self._made is None:
                self._made = asyncio.ensure_future(new_async_client(**self._options))
            self._client = await asyncio.shield(self._made)
        return self._client

    async def aclose(self) -> None:
        made, self._made = self._made, None
        client, self._client = self._client, None
        if client is None and made is not None:
            # Begun (prime) but not used yet: wait for it (a thread, well under a second), so
            # no client is left open behind the closed sender.
            with contextlib.suppress(Exception):
                client = await asyncio.shield(made)
        if client is not None:
            await client.aclose()
