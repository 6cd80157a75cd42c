"""Small real HTTP servers on 127.0.0.1 standing in for Slack, webhook receivers and the LLM
gateway.

Each runs `ThreadingHTTPServer` on an ephemeral port in a thread, records every request and
answers from a script of replies. Use them as context managers so they are always shut down.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

HANG_LIMIT_S = 30.0  # a hanging reply gives up by itself if a test forgets to close


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # accept the request and never answer (until the server closes)


HANG = Reply(hang=True)


@dataclass(frozen=True)
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes = b""  # the body's bytes as sent (what a signature covers)


class StandInServer:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        # A short poll interval makes shutdown() quick; the default would add 0.5 s per test.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> StandInServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._release.set()  # let hanging handlers return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def answer(self, recorded: Recorded) -> Reply:
        raise NotImplementedError

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", errors="replace")
        headers = {k.lower(): v for k, v in handler.headers.items()}
        recorded = Recorded(handler.path, headers, body, raw)
        with self._lock:
            self.requests.append(recorded)
            reply = self.answer(recorded)
        if reply.hang:
            self._release.wait(HANG_LIMIT_S)
            return
        data = b"" if reply.body is None else json.dumps(reply.body).encode("utf-8")
        handler.send_response(reply.status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                owner._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        return Handler


class SlackStandIn(StandInServer):
    """Answers `POST /api/chat.postMessage`; scripted replies are used in order, then every
    request gets `{"ok": true}`."""

    def __init__(self) -> None:
        super().__init__()
        self._script: deque[Reply] = deque()

    def __enter__(self) -> SlackStandIn:
        super().__enter__()
        return self

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api"

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def answer(self, recorded: Recorded) -> Reply:
        if self._script:
            return self._script.popleft()
        return Reply(200, {"ok": True, "ts": "1700000000.000100"})

    @property
    def posts(self) -> list[Any]:
        with self._lock:
            return [r.body for r in self.requests]


class WebhookStandIn(StandInServer):
    """A webhook receiver at `url`: scripted replies are used in order, then every request
    gets 200. `arrived` is set at each request, so tests wait on it rather than sleep."""

    def __init__(self) -> None:
        super().__init__()
        self._script: deque[Reply] = deque()
        self.arrived = threading.Event()

    def __enter__(self) -> WebhookStandIn:
        super().__enter__()
        return self

    @property
    def url(self) -> str:
        return f"{self.base_url}/hooks/jeeves"

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def answer(self, recorded: Recorded) -> Reply:
        self.arrived.set()
        if self._script:
            return self._script.popleft()
        return Reply(200, {"ok": True})

    @property
    def events(self) -> list[Any]:
        """The bodies received, in order of arrival."""
        with self._lock:
            return [r.body for r in self.requests]

    def recorded(self) -> list[Recorded]:
        with self._lock:
            return list(self.requests)


def gateway_ok(result: Any) -> Reply:
    return Reply(200, {"ok": True, "result": result})


def gateway_refusal(message: str) -> Reply:
    return Reply(200, {"ok": False, "error": {"type": "tool_error", "message": message}})


class GatewayStandIn(StandInServer):
    """Answers `POST /tools/invoke` like the gateway: a wrong bearer token gets 401; each tool
    answers from its own script, whose last reply repeats once the others are used."""

    SESSION_KEY = "agent:main:subagent:7f3a"

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self._scripts: dict[str, deque[Reply]] = {
            "sessions_spawn": deque(
                [gateway_ok({"details": {"childSessionKey": self.SESSION_KEY, "runId": "r-1"}})]
            ),
            "sessions_history": deque([gateway_ok([])]),
            "sessions_list": deque([gateway_ok([])]),
        }

    def __enter__(self) -> GatewayStandIn:
        super().__enter__()
        return self

    def on(self, tool: str, *replies: Reply) -> None:
        with self._lock:
            self._scripts[tool] = deque(replies)

    def answer(self, recorded: Recorded) -> Reply:
        if recorded.path != "/tools/invoke":
            return Reply(404, {"ok": False, "error": "not found"})
        if recorded.headers.get("authorization") != f"Bearer {self.token}":
            return Reply(401, {"ok": False, "error": {"type": "unauthorized"}})
        body = recorded.body if isinstance(recorded.body, dict) else {}
        script = self._scripts.get(str(body.get("tool")))
        if not script:
            return Reply(404, {"ok": False, "error": {"message": "unknown tool"}})
        return script.popleft() if len(script) > 1 else script[0]

    def calls(self, tool: str | None = None) -> list[dict[str, Any]]:
        """The `args` of each call, optionally only those of one tool."""
        with self._lock:
            bodies = [r.body for r in self.requests if isinstance(r.body, dict)]
        return [b["args"] for b in bodies if tool is None or b.get("tool") == tool]
