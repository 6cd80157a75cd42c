"""uvicorn inside the runner's own event loop, beside the scheduler.

The runner owns the process: its signals, its logging, its shutdown order. So the server here
binds its socket itself (a taken port is a clear error, not uvicorn's `sys.exit`), installs no
signal handlers, configures no logging, and runs no lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from email.utils import formatdate

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

BACKLOG = 128
# A client has this long to send a request's headers, from connecting or from the end of
# its previous response: a slow client cannot hold a connection (and a descriptor) for good.
HEADER_TIMEOUT_S = 10.0
# Connections past this are closed at once: descriptors stay free for the jobs' pipes.
MAX_CONNECTIONS = 2048


class _JsonErrorH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, with its own 400s (a request h11 cannot parse, an upgrade
    it does not serve) in this API's error shape, `{"error": "<sentence>"}`, like every other
    error of the API, instead of uvicorn's plain text."""

    def send_400_response(self, msg: str) -> None:
        body = json.dumps({"error": msg.rstrip(".")}).encode("utf-8")
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode("ascii")),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event) or b"")
        self.transport.close()


class BoundedH11Protocol(_JsonErrorH11Protocol):
    """With a header-read deadline and a connection cap."""

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > MAX_CONNECTIONS:
            transport.abort()
            return
        self._arm_header_timer()

    def handle_events(self) -> None:
        _refresh_date(self.server_state)
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:
            self._disarm_header_timer()  # the request's headers are in

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self.transport.close()


class ListenError(OSError):
    """The API cannot listen on its address; the message names it and says why."""

    def __init__(self, host: str, port: int, reason: str, errno: int | None = None) -> None:
        shown = f"[{host}]" if ":" in host else host
        super().__init__(f"cannot listen on {shown}:{port}: {reason}")
        self.errno = errno
        self.host = host
        self.port = port


class _SignalFreeServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The runner handles SIGTERM/SIGINT (stop firing, drain runs, then stop this server).
        yield


class ApiServer:
    def __init__(
        self, app: ASGIApp, host: str, port: int, *, drain_timeout_s: int | None = 30
    ) -> None:
        """`drain_timeout_s`: at stop, how long requests still being answered may take before
        they are cancelled (None: no limit)."""
        self.host = host
        self._requested_port = port
        self._config = uvicorn.Config(
            app,
            host=host,
            port=port,
            loop="asyncio",
            http=BoundedH11Protocol,
            ws="none",
            lifespan="off",
            log_config=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=drain_timeout_s,
        )
        self._server: _SignalFreeServer | None = None
        self._socket: socket.socket | None = None
        self._ticker: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The port listened on: the one the OS chose when 0 was asked."""
        if self._socket is None:
            return self._requested_port
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Returns once the socket listens. Raises ListenError if it cannot."""
        if self._server is not None:
            raise RuntimeError("the API server is already started")
        sock = bind_socket(self.host, self._requested_port)
        config = self._config
        if not config.loaded:
            config.load()
        server = _SignalFreeServer(config)
        server.lifespan = config.lifespan_class(config)
        try:
            await server.startup(sockets=[sock])
        except BaseException:
            sock.close()
            raise
        self._server, self._socket = server, sock
        # No tick: uvicorn's wakes ten times a second to refresh the Date header and notice
        # should_exit; here the header is refreshed as requests come in (BoundedH11Protocol)
        # and stopping is ours, so an idle runner does not wake for the server at all.
        await server.on_tick(0)  # the first Date header
        self._ticker = asyncio.create_task(_idle(), name="api-server-idle")

    def cut_drain(self) -> None:
        """Stop now (the second stop signal): requests still open are not waited for."""
        self._config.timeout_graceful_shutdown = 0
        if self._server is not None:
            self._server.config.timeout_graceful_shutdown = 0
            self._server.force_exit = True

    async def stop(self) -> None:
        """Stop accepting, let requests being answered finish (up to the drain timeout),
        close every connection."""
        server, sock, ticker = self._server, self._socket, self._ticker
        if server is None or sock is None or ticker is None:
            return
        server.should_exit = True
        ticker.cancel()  # it would notice should_exit within 0.1 s; no need to wait
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
        await server.shutdown(sockets=[sock])
        self._server = self._socket = self._ticker = None


async def _idle() -> None:
    await asyncio.Event().wait()  # what stop() cancels in place of uvicorn's tick


def _refresh_date(state: ServerState) -> None:
    """The Date header of responses, computed at most once a second (as uvicorn's tick
    would), when requests come."""
    now = int(time.time())
    if now != getattr(state, "date_second", None):
        state.date_second = now  # type: ignore[attr-defined]
        headers = [(k, v) for k, v in state.default_headers if k != b"date"]
        state.default_headers = [(b"date", formatdate(now, usegmt=True).encode()), *headers]


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening, non-blocking socket on the first address of `host` that binds."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ListenError(host, port, _reason(exc), exc.errno) from None
    failure: OSError | None = None
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            if os.name != "nt":
                # Lets a restarted runner take its port while old connections linger in
                # TIME_WAIT; a port another program listens on stays refused.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(BACKLOG)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            failure = failure or exc
            continue
        return sock
    assert failure is not None  # getaddrinfo returns at least one address or raises
    raise ListenError(host, port, _reason(failure), failure.errno)


def _reason(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]
