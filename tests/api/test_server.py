"""ApiServer: binding, the port it reports, no signal handlers, a clean stop."""

from __future__ import annotations

import asyncio
import errno
import json
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from fake_control import FakeControl
from starlette.types import Receive, Scope, Send

from jeeves_runner.api import server as server_module
from jeeves_runner.api.app import create_app
from jeeves_runner.api.server import ApiServer, ListenError

T = TypeVar("T")


async def _get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        return await http.get("/health")


def test_port_zero_reports_the_chosen_port(control: FakeControl) -> None:
    async def scenario() -> None:
        server = ApiServer(create_app(control), "127.0.0.1", 0)
        await server.start()
        try:
            assert server.port > 0
            assert server.url == f"http://127.0.0.1:{server.port}"
            assert (await _get(server.url)).json()["ok"] is True
        finally:
            await server.stop()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "request_bytes",
    [b"GARBAGE\r\n\r\n", b"GET /health HTTP/1.1\r\nHost: x\r\nbad header line\r\n\r\n"],
)
def test_a_request_http_cannot_parse_is_a_json_400(
    control: FakeControl, request_bytes: bytes
) -> None:
    async def scenario() -> bytes:
        server = ApiServer(create_app(control), "127.0.0.1", 0)
        await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(request_bytes)
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 10)  # the server closes
            writer.close()
            return answer
        finally:
            await server.stop()

    head, _, body = asyncio.run(scenario()).partition(b"\r\n\r\n")
    lines = head.decode("ascii").split("\r\n")
    assert lines[0] == "HTTP/1.1 400 Bad Request"
    assert "content-type: application/json" in lines
    assert json.loads(body) == {"error": "Invalid HTTP request received"}


def test_taken_port_is_a_clear_error(control: FakeControl) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ApiServer(create_app(control), "127.0.0.1", port)
        with pytest.raises(ListenError) as caught:
            asyncio.run(server.start())
    assert str(caught.value) == f"cannot listen on 127.0.0.1:{port}: address already in use"
    assert isinstance(caught.value, OSError)
    assert caught.value.errno == errno.EADDRINUSE


def test_unknown_host_is_a_clear_error(control: FakeControl) -> None:
    server = ApiServer(create_app(control), "no-such-host.invalid", 1937)
    with pytest.raises(ListenError, match=r"^cannot listen on no-such-host\.invalid:1937: "):
        asyncio.run(server.start())


def test_installs_no_signal_handlers(control: FakeControl) -> None:
    # The runner owns SIGTERM/SIGINT; the server runs here on the main thread, where uvicorn
    # would otherwise take them. (asyncio.run sets its own SIGINT handler, hence "before" is
    # read inside the loop.)
    signals = (signal.SIGTERM, signal.SIGINT)

    async def scenario() -> None:
        before = {sig: signal.getsignal(sig) for sig in signals}
        server = ApiServer(create_app(control), "127.0.0.1", 0)
        await server.start()
        try:
            await _get(server.url)
            assert {sig: signal.getsignal(sig) for sig in signals} == before
        finally:
            await server.stop()
        assert {sig: signal.getsignal(sig) for sig in signals} == before

    asyncio.run(scenario())


def test_stop_closes_the_port_and_it_can_be_taken_again(control: FakeControl) -> None:
    async def scenario() -> None:
        first = ApiServer(create_app(control), "127.0.0.1", 0)
        await first.start()
        port = first.port
        await _get(first.url)  # leave a keep-alive connection behind
        await first.stop()
        await first.stop()  # a second stop does nothing
        with pytest.raises(httpx.ConnectError):
            await _get(first.url)
        again = ApiServer(create_app(control), "127.0.0.1", port)
        await again.start()
        try:
            assert (await _get(again.url)).status_code == 200
        finally:
            await again.stop()

    asyncio.run(scenario())


def test_a_client_too_slow_with_its_headers_is_disconnected(
    control: FakeControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "HEADER_TIMEOUT_S", 0.3)

    async def scenario() -> None:
        server = ApiServer(create_app(control), "127.0.0.1", 0)
        await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never finished
            await writer.drain()
            # Closed by the server, without an answer, once the deadline passed.
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
            # A client that finishes in time is answered, also on its next request.
            async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
                assert (await http.get("/health")).status_code == 200
                await asyncio.sleep(0.5)  # idle past the header deadline, within keep-alive
                assert (await http.get("/health")).status_code == 200
        finally:
            await server.stop()

    asyncio.run(scenario())


def test_connections_past_the_cap_are_closed_at_once(
    control: FakeControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "MAX_CONNECTIONS", 3)

    async def scenario() -> None:
        server = ApiServer(create_app(control), "127.0.0.1", 0)
        await server.start()
        opened: list[asyncio.StreamWriter] = []
        try:
            for _ in range(3):
                _, writer = await asyncio.open_connection("127.0.0.1", server.port)
                opened.append(writer)
            await asyncio.sleep(0.1)
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            opened.append(writer)
            writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                data = await asyncio.wait_for(reader.read(), 5)
            except ConnectionResetError:
                data = b""  # aborted: the same as closed without an answer
            assert data == b""
            # Once connections close, new ones are served again.
            while opened:
                opened.pop().close()
            await asyncio.sleep(0.2)
            async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
                assert (await http.get("/health")).status_code == 200
        finally:
            for writer in opened:
                writer.close()
            await server.stop()

    asyncio.run(scenario())


def test_responses_carry_a_current_date_header(control: FakeControl) -> None:
    async def scenario() -> None:
        server = ApiServer(create_app(control), "127.0.0.1", 0)
        await server.start()
        try:
            async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
                first = parsedate_to_datetime((await http.get("/health")).headers["date"])
                await asyncio.sleep(1.1)  # the header is per second
                later = parsedate_to_datetime((await http.get("/health")).headers["date"])
            assert (later - first).total_seconds() >= 1
            assert abs(later.timestamp() - time.time()) < 2
        finally:
            await server.stop()

    asyncio.run(scenario())


# ---- the HTTP/1.1 protocol (uvicorn's httptools one, bounded) ----------------------------

BAD_REQUEST = {"error": "Invalid HTTP request received"}
GET_HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"


def _answers(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """The responses in `data`, in order: status, headers (lower-case names), body. Each has
    a Content-Length (as every answer of this API has)."""
    answers = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        size = int(headers["content-length"])
        answers.append((status, headers, rest[:size]))
        data = rest[size:]
    return answers


async def _exchange(port: int, data: bytes) -> bytes:
    """Send `data` on a new connection and read until the server closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def _served(control: FakeControl, work: Callable[[ApiServer], Awaitable[T]]) -> T:
    async def scenario() -> T:
        server = ApiServer(create_app(control), "127.0.0.1", 0)
        await server.start()
        try:
            return await work(server)
        finally:
            await server.stop()

    return asyncio.run(scenario())


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(b"GET /health HTTP/1.1\r\nHost : x\r\n\r\n", id="space-before-colon"),
        pytest.param(b"GET /health HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n", id="control-byte"),
        pytest.param(b"GET /health HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", id="folded"),
        pytest.param(b"GET /health HTTP/1.1\r\n\r\n", id="no-host"),
        pytest.param(b"GET /health HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", id="two-hosts"),
        pytest.param(b"GET /health\r\n\r\n", id="http-0.9"),
        pytest.param(b"GET /health HTTP/2.0\r\nHost: x\r\n\r\n", id="http-2.0"),
        pytest.param(b"FOO /health HTTP/1.1\r\nHost: x\r\n\r\n", id="unknown-method"),
        pytest.param(b"GET /health HTTP/1.1\nHost: x\n\n", id="bare-lf"),
        pytest.param(
            b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            id="length-and-chunked",
        ),
        pytest.param(
            b"POST /jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            id="bad-chunk-size",
        ),
        pytest.param(
            b"POST /jobs HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: foo\r\n"
            b"Content-Length: 2\r\n\r\n{}",
            id="upgrade-with-a-body",
        ),
        # Not finished, and past the bytes a request's head may take: answered at once, not
        # at the header deadline.
        pytest.param(b"GET /health HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20_000, id="head-too-long"),
    ],
)
def test_invalid_requests_are_a_json_400_and_the_connection_closes(
    control: FakeControl, request_bytes: bytes
) -> None:
    answers = _answers(_served(control, lambda server: _exchange(server.port, request_bytes)))
    assert [(status, json.loads(body)) for status, _, body in answers] == [(400, BAD_REQUEST)]
    headers = answers[0][1]
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert "date" in headers


def test_a_long_head_sent_at_once_is_served(control: FakeControl) -> None:
    big = (
        b"GET /health HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 15_000 + b"\r\nConnection: close\r\n\r\n"
    )
    answers = _answers(_served(control, lambda server: _exchange(server.port, big)))
    assert [status for status, _, _ in answers] == [200]


def test_pipelined_requests_are_answered_in_order_then_a_bad_one_is_a_400(
    control: FakeControl,
) -> None:
    # More requests than are parsed ahead (MAX_PIPELINED), in more bytes than one slice of
    # the parser, sent at once; a request the app answers 404 marks each one's place.
    count = 150
    requests = [
        GET_HEALTH if i % 3 else b"GET /jobs/nope HTTP/1.1\r\nHost: x\r\n\r\n" for i in range(count)
    ]
    data = b"".join(requests) + b"GARBAGE\r\n\r\n"
    assert len(data) > 2 * server_module.READ_SLICE
    answers = _answers(_served(control, lambda server: _exchange(server.port, data)))
    assert [status for status, _, _ in answers] == [
        *(200 if i % 3 else 404 for i in range(count)),
        400,
    ]
    assert json.loads(answers[-1][2]) == BAD_REQUEST


def test_a_bad_body_behind_a_pipelined_request_is_a_400_after_its_answer(
    control: FakeControl,
) -> None:
    # The POST behind the GET is not answered (its body never comes whole); the GET is.
    data = (
        GET_HEALTH + b"POST /jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\n{}\r\nzz\r\n"
    )
    answers = _answers(_served(control, lambda server: _exchange(server.port, data)))
    assert [(status, json.loads(body)) for status, _, body in answers][1:] == [(400, BAD_REQUEST)]
    assert answers[0][0] == 200


def test_requests_sent_ahead_wait_unparsed_past_the_bound() -> None:
    # A first request held open by its app; 2,000 more sent behind it at once. Only a bounded
    # number are parsed (each parsed one is a request object held until its turn).
    release = asyncio.Event()
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["path"])
        if scope["path"] == "/hold":
            await release.wait()
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]}
        )
        await send({"type": "http.response.body", "body": b""})

    async def scenario() -> tuple[int, int]:
        server = ApiServer(app, "127.0.0.1", 0)
        await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            behind = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n" * 2000
            writer.write(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n" + behind)
            await writer.drain()
            assert server._server is not None
            connections = server._server.server_state.connections
            deadline = time.monotonic() + 10
            while not seen and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            # The first read is parsed (its first request runs); what follows waits unread.
            (protocol,) = connections
            parsed_ahead = len(protocol.pipeline)  # type: ignore[attr-defined]
            release.set()
            answers = b""
            while answers.count(b"HTTP/1.1 200") < 2001:
                chunk = await asyncio.wait_for(reader.read(65536), 10)
                assert chunk, "the server closed the connection"
                answers += chunk
            writer.close()
            return parsed_ahead, len(seen)
        finally:
            await server.stop()

    parsed_ahead, served = asyncio.run(scenario())
    per_slice = server_module.READ_SLICE // len(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n") + 1
    assert 0 < parsed_ahead <= server_module.MAX_PIPELINED + per_slice
    assert served == 2001


@pytest.mark.parametrize("after_an_answer", [False, True], ids=["first-request", "next-request"])
def test_a_request_line_trickled_byte_by_byte_is_cut_at_the_header_deadline(
    control: FakeControl, monkeypatch: pytest.MonkeyPatch, after_an_answer: bool
) -> None:
    # Each byte stops the keep-alive timer (5 s); the header deadline still runs from the
    # connection (or the end of the previous answer) and closes it, unanswered.
    monkeypatch.setattr(server_module, "HEADER_TIMEOUT_S", 0.5)
    request_line = b"GET /health?" + b"x" * 200 + b" HTTP/1.1\r\n"

    async def work(server: ApiServer) -> tuple[float, int, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            if after_an_answer:
                writer.write(GET_HEALTH)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                await reader.readexactly(int(_answers(head)[0][1]["content-length"]))
            began = time.monotonic()
            for sent, byte in enumerate(request_line):
                writer.write(bytes([byte]))
                try:
                    data = await asyncio.wait_for(reader.read(1), 0.05)
                except TimeoutError:
                    continue
                except ConnectionResetError:
                    data = b""  # closed: a byte crossed the close
                return time.monotonic() - began, sent, data
            raise AssertionError("the whole request line went through")
        finally:
            writer.close()

    elapsed, sent, data = _served(control, work)
    assert data == b""
    assert 0.3 < elapsed < 3
    assert sent < len(request_line)


def test_connection_close_http_1_0_and_head_are_answered_as_before(control: FakeControl) -> None:
    async def work(server: ApiServer) -> tuple[bytes, bytes, bytes]:
        close = await _exchange(
            server.port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        old = await _exchange(server.port, b"GET /health HTTP/1.0\r\n\r\n")
        # HEAD, then GET on the same connection: HEAD's answer has no body to skip.
        head = await _exchange(
            server.port,
            b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        return close, old, head

    close, old, head = _served(control, work)
    for data in (close, old):
        ((status, headers, body),) = _answers(data)
        assert (status, headers["connection"], json.loads(body)["ok"]) == (200, "close", True)
    head_line, _, rest = head.partition(b"\r\n\r\n")
    assert head_line.startswith(b"HTTP/1.1 200 OK\r\n")
    length = int(_answers(head_line + b"\r\n\r\n")[0][1]["content-length"])
    assert length > 0  # the GET's length, with no body sent
    ((status, _, body),) = _answers(rest)
    assert status == 200
    assert len(body) == length


def test_a_chunked_body_is_read(control: FakeControl, tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    job = {"id": "nightly", "name": "Nightly", "schedule": "0 3 * * *", "script": str(script)}
    text = json.dumps(job).encode()

    async def work(server: ApiServer) -> httpx.Response:
        async def parts() -> AsyncIterator[bytes]:  # no length: sent chunked
            for i in range(0, len(text), 7):
                yield text[i : i + 7]

        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            return await http.post(
                "/jobs", content=parts(), headers={"content-type": "application/json"}
            )

    response = _served(control, work)
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 201, response.text
    assert response.json()["job"]["script"] == str(script)


def test_an_upgrade_is_answered_as_a_plain_request_and_the_connection_goes_on(
    control: FakeControl,
) -> None:
    # No WebSocket here: the upgrade is ignored (as HTTP allows), as with curl --http2.
    data = (
        b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
        b"GET /jobs/nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    answers = _answers(_served(control, lambda server: _exchange(server.port, data)))
    assert [status for status, _, _ in answers] == [200, 404]


def test_the_header_deadline_runs_from_the_last_answer_not_from_the_connection(
    control: FakeControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_module, "HEADER_TIMEOUT_S", 1.0)

    async def work(server: ApiServer) -> tuple[bytes | None, bytes, float]:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            await asyncio.sleep(0.6)  # most of the first deadline, then a request
            writer.write(GET_HEALTH)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            await reader.readexactly(int(_answers(head)[0][1]["content-length"]))
            answered = time.monotonic()
            # Past the deadline counted from connecting: still open (None), ...
            try:
                early: bytes | None = await asyncio.wait_for(reader.read(1), 0.6)
            except TimeoutError:
                early = None
            # ... and closed, unanswered, once the one counted from the answer passes.
            late = await asyncio.wait_for(reader.read(1), 5)
            return early, late, time.monotonic() - answered
        finally:
            writer.close()

    early, late, idle = _served(control, work)
    assert early is None
    assert late == b""
    assert 0.6 < idle < 3


def test_header_values_come_without_the_whitespace_around_them() -> None:
    # HTTP's optional whitespace around a field value is not part of it (RFC 9110 5.5), and
    # h11, which the server ran on before, left it out; llhttp keeps what trails a value.
    seen: list[list[tuple[bytes, bytes]]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(list(scope["headers"]))
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]}
        )
        await send({"type": "http.response.body", "body": b""})

    async def scenario() -> bytes:
        server = ApiServer(app, "127.0.0.1", 0)
        await server.start()
        try:
            return await _exchange(
                server.port,
                b"GET /h HTTP/1.1\r\nHost: x \r\nX-A:  a b \t\r\nX-Empty: \r\n"
                b"Connection: close\r\n\r\n",
            )
        finally:
            await server.stop()

    answers = _answers(asyncio.run(scenario()))
    assert [status for status, _, _ in answers] == [200]
    assert seen == [
        [(b"host", b"x"), (b"x-a", b"a b"), (b"x-empty", b""), (b"connection", b"close")]
    ]


def test_an_own_origin_with_trailing_whitespace_is_still_the_own_origin(
    control: FakeControl,
) -> None:
    # What the whitespace above decides: a POST from the API's own origin is not refused as
    # another one's (403) because its Origin header ended in a space.
    async def work(server: ApiServer) -> list[tuple[int, dict[str, str], bytes]]:
        own = f"http://127.0.0.1:{server.port}"
        data = await _exchange(
            server.port,
            b"POST /jobs/nope/enable HTTP/1.1\r\nHost: 127.0.0.1:%d \r\nOrigin: %s \r\n"
            b"Content-Length: 0\r\nConnection: close\r\n\r\n" % (server.port, own.encode()),
        )
        return _answers(data)

    ((status, _, body),) = _served(control, work)
    assert (status, json.loads(body)) == (404, {"error": "Job not found"})
