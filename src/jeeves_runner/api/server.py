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

import httptools
import structlog
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

log = structlog.get_logger("jeeves_runner.api")

BACKLOG = 128
# A client has this long to send a request's headers, from connecting or from the end of
# its previous response: a slow client cannot hold a connection (and a descriptor) for good.
HEADER_TIMEOUT_S = 10.0
# Connections past this are closed at once: descriptors stay free for the jobs' pipes.
MAX_CONNECTIONS = 2048
# At stop, how often the server looks whether its connections and requests are done.
SHUTDOWN_POLL_S = 0.01
# A request line and headers still unfinished past this many bytes are a 400: the bytes a
# client can make the server hold while it waits for a request (h11's bound, which the
# server had before httptools).
MAX_HEAD_BYTES = 16 * 1024
# Requests a client sends ahead (pipelined) are parsed at most this many ahead of the one
# being answered; the rest of its bytes wait unparsed, and reading stops until they are
# parsed. httptools parses all it is given at once: 256 KiB of small requests, one read,
# would otherwise be 8,000 request objects (15 MB) held for one connection.
MAX_PIPELINED = 8
# The parser is given what was read in slices this size, so that the bound above holds
# within one read too (a slice holds at most about a hundred requests).
READ_SLICE = 2048

_BAD_REQUEST = "Invalid HTTP request received."


class _Refused(Exception):
    """Raised from a parser callback: the request is a 400 (raising stops the parser)."""


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol on httptools (llhttp, in C: half the server CPU a request
    of uvicorn's pure-Python h11 protocol, 0.061 against 0.122 ms in bench_http_floor), with

    - its 400s (a request that is not valid HTTP) in this API's error shape,
      `{"error": "<sentence>"}`, like every other error of the API, instead of plain text; a
      400 for bytes sent behind pipelined requests comes after their answers, in order;
    - the checks h11 made that llhttp does not: HTTP/1.1 without exactly one Host header, a
      request with no HTTP version (HTTP/0.9) or another major version;
    - a request asking for an upgrade (there is no WebSocket here) answered as a plain request
      and what follows it read on, as h11 did; one with a body is a 400, as llhttp would not
      read that body as HTTP;
    - a header-read deadline (HEADER_TIMEOUT_S, armed on connect and after each answer when
      no request is waiting for one) and a bound on the bytes of an unfinished request head
      (MAX_HEAD_BYTES);
    - a connection cap (MAX_CONNECTIONS) and a bound on requests parsed ahead
      (MAX_PIPELINED);
    - the Date header refreshed as requests come (the server runs without uvicorn's tick).
    """

    _header_timer: asyncio.TimerHandle | None = None
    _header_deadline = 0.0  # the loop's time
    # Requests whose headers are in and whose answer is not yet complete.
    _unanswered = 0
    # Reading a request line and headers (not a body): MAX_HEAD_BYTES applies.
    _reading_head = True
    _head_bytes = 0
    # Bytes read but not yet given to the parser (requests pipelined past MAX_PIPELINED).
    _unparsed = b""
    # Set once the request read is not valid HTTP: the 400's message, sent once every request
    # read before it is answered; nothing more is parsed.
    _refused: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > MAX_CONNECTIONS:
            transport.abort()
            return
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    # ---- reading -----------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._refused is not None:
            return  # the parser stopped at the bad bytes; nothing after them is read
        if self._unparsed:
            self._unparsed += data  # behind requests still waiting to be parsed
            self.flow.pause_reading()
            return
        self._parse(data)

    def _parse(self, data: bytes) -> None:
        # Slices of a view, not copies (one read is up to 256 KiB); most reads are one slice.
        view: bytes | memoryview = memoryview(data) if len(data) > READ_SLICE else data
        start, end = 0, len(data)
        while start < end:
            if len(self.pipeline) >= MAX_PIPELINED:
                self._unparsed = bytes(view[start:])
                self.flow.pause_reading()
                break
            piece = view[start : start + READ_SLICE]
            if self._reading_head:
                self._head_bytes += len(piece)
            try:
                self.parser.feed_data(piece)
            except httptools.HttpParserUpgrade as upgrade:
                # A request that asked for an upgrade, answered as a plain one (there is no
                # WebSocket here): what follows it is the next request.
                start += int(upgrade.args[0])
                continue
            except httptools.HttpParserError:
                self._refuse(_BAD_REQUEST)
                return
            start += len(piece)
        if self._reading_head and self._head_bytes > MAX_HEAD_BYTES:
            self._refuse(_BAD_REQUEST)

    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp leaves out the whitespace before a value but keeps what trails it; it is not
        # part of the value (RFC 9110 5.5), and h11 left it out: an Origin or Host ending in a
        # space would otherwise not be this server's own. httptools calls this once a header
        # is whole, so the value is never a piece of one.
        super().on_header(name, value.rstrip(b" \t"))

    def on_headers_complete(self) -> None:
        hosts = 0
        for name, _ in self.headers:
            if name == b"host":
                hosts += 1
        version = self.parser.get_http_version()
        if hosts > 1 or (hosts == 0 and version == "1.1") or not version.startswith("1."):
            raise _Refused
        if self.parser.should_upgrade() and _has_body(self.headers):
            raise _Refused
        _refresh_date(self.server_state)  # before the answer takes the default headers
        super().on_headers_complete()
        self._unanswered += 1  # the header deadline does not apply until it is answered
        self._reading_head = False

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_head = True  # the next request's head, from its first byte
        self._head_bytes = 0

    # ---- answering ---------------------------------------------------------------------

    def on_response_complete(self) -> None:
        super().on_response_complete()  # starts the next pipelined request, if any
        self._unanswered -= 1
        if self.transport.is_closing():
            return
        if self._unparsed and self._refused is None:
            data, self._unparsed = self._unparsed, b""
            self._unset_keepalive_if_required()  # as data_received would have
            self._parse(data)
            if self.transport.is_closing():
                return
        if self._unanswered:
            return
        if self._refused is not None:
            self._send_400(self._refused)
        else:
            self._arm_header_timer()

    def send_400_response(self, msg: str) -> None:
        self._refuse(msg)

    def _refuse(self, msg: str) -> None:
        self.logger.warning(msg)
        self._refused = msg
        self._unparsed = b""
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not cycle.response_complete:
            # The bad bytes were in this request's body: it will not be answered.
            self._unanswered -= 1
            if self.pipeline and self.pipeline[0][0] is cycle:
                self.pipeline.popleft()  # it was waiting behind others: it never starts
            else:
                cycle.disconnected = True  # its app, running, reads a disconnect
                cycle.message_event.set()
                if cycle.response_started:
                    self.transport.close()  # no 400 in the middle of its answer
                    return
        if not self._unanswered:
            self._send_400(msg)
        # else: once the requests read before the bad bytes are answered (on_response_complete)

    def _send_400(self, msg: str) -> None:
        body = json.dumps({"error": msg.rstrip(".")}).encode("utf-8")
        _refresh_date(self.server_state)
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head.append(
            b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % len(body)
        )
        self.transport.write(b"".join(head) + body)
        self.transport.close()

    # ---- the header deadline -------------------------------------------------------------
    # One timer per connection, moved lazily: each answer only pushes the deadline back, and
    # the timer, when it fires early, sets itself again for the deadline. A timer set and
    # cancelled for every request costs about 2 µs of the loop's time each.

    def _arm_header_timer(self) -> None:
        self._header_deadline = self.loop.time() + HEADER_TIMEOUT_S
        if self._header_timer is None:
            self._header_timer = self.loop.call_at(self._header_deadline, self._headers_due)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_due(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self._unanswered:
            return  # a request is in: the deadline is set again once it is answered
        if self.loop.time() < self._header_deadline:
            self._header_timer = self.loop.call_at(self._header_deadline, self._headers_due)
        else:
            self.transport.close()  # no request's headers in time


def _has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


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

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's shutdown (stop accepting, ask every connection to close, give requests
        being answered up to the drain timeout, then cancel them), polling every 10 ms rather
        than sleeping 0.1 s at least: a runner with no connection open stops at once."""
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        try:
            await asyncio.wait_for(self._drained(), timeout=self.config.timeout_graceful_shutdown)
        except TimeoutError:
            if self.server_state.tasks:
                log.warning(
                    "requests cancelled at the end of the drain time",
                    requests=len(self.server_state.tasks),
                    drain_s=self.config.timeout_graceful_shutdown,
                )
            for task in self.server_state.tasks:
                task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
        if not self.force_exit:
            await self.lifespan.shutdown()

    async def _drained(self) -> None:
        state = self.server_state
        while (state.connections or state.tasks) and not self.force_exit:
            await asyncio.sleep(SHUTDOWN_POLL_S)
        for server in self.servers:
            await server.wait_closed()


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
            http=BoundedHttpProtocol,
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
        # should_exit; here the header is refreshed as requests come in (BoundedHttpProtocol)
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
