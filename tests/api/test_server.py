"""ApiServer: binding, the port it reports, no signal handlers, a clean stop."""

from __future__ import annotations

import asyncio
import errno
import json
import signal
import socket
import time
from email.utils import parsedate_to_datetime

import httpx
import pytest
from fake_control import FakeControl

from jeeves_runner.api import server as server_module
from jeeves_runner.api.app import create_app
from jeeves_runner.api.server import ApiServer, ListenError


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
