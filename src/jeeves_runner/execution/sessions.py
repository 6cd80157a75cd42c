"""Session jobs: hand a prompt to the LLM gateway and wait for the session to finish.

Every gateway call is `POST {url}/tools/invoke` with a bearer token and
`{"tool": NAME, "args": {...}}`; the reply is `{"ok": true, "result": ...}`. The session
runner turns everything that can go wrong into a `RunResult`, so the caller records it like
any script run; only cancellation (shutdown, a killed run) propagates.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import structlog
from structlog.typing import FilteringBoundLogger

from jeeves_runner.clock import Clock
from jeeves_runner.config import GatewayConfig
from jeeves_runner.execution.child_env import GATEWAY_TOKEN_ENV
from jeeves_runner.execution.executor import SCRIPT_EXTENSIONS
from jeeves_runner.http_clients import new_async_client
from jeeves_runner.jobs.rules import PROMPT_FILE_EXTENSIONS
from jeeves_runner.models import Job, RunResult, RunStatus

Sleep = Callable[[float], Awaitable[None]]

TOKEN_ENV = GATEWAY_TOKEN_ENV
DEFAULT_SESSION_TIMEOUT_MS = 300_000
POLL_GROWTH = 1.2
POLL_CAP_FACTOR = 3  # 5 s start, capped at 15 s
REQUEST_TIMEOUT_S = 30.0
HISTORY_LIMIT = 3
# A gateway restart or a proxy hiccup should not fail an hour-long session; this many
# polls failing in a row should.
MAX_POLL_FAILURES = 3
LIST_ACTIVE_MINUTES = 10
LIST_LIMIT = 200
STDOUT_MAX_LINES = 100
STDOUT_MAX_CHARS = 32_000
# stopReason values that end a session without an answer the job asked for.
FAILED_STOP_REASONS = frozenset({"error", "aborted"})
# The model paused to call a tool; with includeTools false the tool result is hidden, so
# such a message can be last while the session is still working.
TOOL_STOP_REASONS = frozenset({"toolUse", "tool_use", "tool_calls"})


class GatewayError(Exception):
    """A gateway call that failed; the message is one sentence for the run's error field.

    `transient` marks failures a later poll may not see again (no connection, a timeout,
    HTTP 429/5xx); refusals and a rejected token are not.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient


@dataclass(frozen=True, slots=True)
class SpawnedSession:
    session_key: str
    run_id: str | None


@dataclass(frozen=True, slots=True)
class SessionInfo:
    session_key: str
    total_tokens: int | None
    model: str | None


class GatewayClient:
    def __init__(
        self,
        url: str,
        token: str,
        http: httpx.AsyncClient,
        *,
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._http = http
        self._timeout_s = timeout_s

    async def spawn(
        self, task: str, label: str, run_timeout_s: int, *, timeout_s: float | None = None
    ) -> SpawnedSession:
        args = {
            "task": task,
            "label": label,
            "thinking": "low",
            "runTimeoutSeconds": run_timeout_s,
        }
        result = await self._invoke("sessions_spawn", args, timeout_s=timeout_s)
        details = result.get("details") if isinstance(result, dict) else None
        key = details.get("childSessionKey") if isinstance(details, dict) else None
        if not isinstance(key, str) or not key:
            raise GatewayError("gateway reply to sessions_spawn has no childSessionKey")
        run_id = details.get("runId") if isinstance(details, dict) else None
        return SpawnedSession(key, run_id if isinstance(run_id, str) else None)

    async def history(
        self, session_key: str, limit: int, *, timeout_s: float | None = None
    ) -> list[dict[str, Any]]:
        args = {"sessionKey": session_key, "limit": limit, "includeTools": False}
        result = await self._invoke("sessions_history", args, timeout_s=timeout_s)
        return _rows(result, "messages")

    async def list_sessions(self, active_minutes: int, limit: int) -> list[SessionInfo]:
        args = {"activeMinutes": active_minutes, "limit": limit}
        result = await self._invoke("sessions_list", args)
        sessions: list[SessionInfo] = []
        for row in _rows(result, "sessions"):
            key = row.get("sessionKey", row.get("key"))
            if not isinstance(key, str):
                continue
            tokens = row.get("totalTokens")
            model = row.get("model")
            sessions.append(
                SessionInfo(
                    session_key=key,
                    total_tokens=tokens if _is_int(tokens) else None,
                    model=model if isinstance(model, str) else None,
                )
            )
        return sessions

    async def _invoke(
        self, tool: str, args: dict[str, Any], *, timeout_s: float | None = None
    ) -> Any:
        timeout = self._timeout_s if timeout_s is None else timeout_s
        try:
            response = await self._http.post(
                f"{self.url}/tools/invoke",
                json={"tool": tool, "args": args},
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=timeout,
            )
        except httpx.ConnectError:
            raise GatewayError(f"gateway not reachable at {self.url}", transient=True) from None
        except httpx.TimeoutException:
            raise GatewayError(
                f"gateway did not answer {tool} within {timeout:g}s", transient=True
            ) from None
        except httpx.HTTPError as exc:
            raise GatewayError(
                f"gateway call {tool} failed: {type(exc).__name__}: {exc}", transient=True
            ) from None
        status = response.status_code
        if status in (401, 403):
            raise GatewayError(f"gateway rejected the token (HTTP {status})")
        try:
            reply = response.json()
        except ValueError:
            reply = None
        if status != 200:
            detail = _error_text(reply.get("error")) if isinstance(reply, dict) else None
            suffix = f": {detail}" if detail else ""
            raise GatewayError(
                f"gateway answered HTTP {status} to {tool}{suffix}",
                transient=status == 429 or status >= 500,
            )
        if not isinstance(reply, dict):
            raise GatewayError(f"gateway reply to {tool} is not a JSON object")
        if reply.get("ok") is not True:
            raise GatewayError(f"gateway refused {tool}: {_error_text(reply.get('error'))}")
        return reply.get("result")


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        message = error.get("message") or error.get("type")
        if isinstance(message, str):
            return message
    if isinstance(error, str) and error:
        return error
    return "no reason given"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _rows(result: Any, key: str) -> list[dict[str, Any]]:
    """The spec's replies are bare lists; tolerate `{key: [...]}` and `{details: {key: [...]}}`
    as well, the shapes tool results take elsewhere in the gateway."""
    if isinstance(result, dict):
        details = result.get("details")
        result = result.get(key, details.get(key) if isinstance(details, dict) else None)
    if not isinstance(result, list):
        return []
    return [row for row in result if isinstance(row, dict)]


# --- pure decisions ------------------------------------------------------------------------


class PromptError(Exception):
    pass


def load_prompt(script: str) -> str:
    """The job's prompt: the text itself, or the contents of the .md/.txt file it names.

    A single line ending in a prompt or script extension is a path (the rule `add-job` uses).
    """
    lowered = script.strip().lower()
    one_line = "\n" not in script.strip()
    if one_line and lowered.endswith(SCRIPT_EXTENSIONS):
        raise PromptError(
            f"a session job takes prompt text or a .md/.txt file, not the script {script.strip()}"
        )
    if one_line and lowered.endswith(PROMPT_FILE_EXTENSIONS):
        path = Path(script.strip()).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise PromptError(f"prompt file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise PromptError(f"prompt file {path} cannot be read ({reason})") from None
        if not text.strip():
            raise PromptError(f"prompt file {path} is empty")
        return text
    if not script.strip():
        raise PromptError("the session job's prompt is empty")
    return script


def next_poll_interval(current_s: float, start_s: float) -> float:
    return min(current_s * POLL_GROWTH, start_s * POLL_CAP_FACTOR)


def is_complete(messages: list[dict[str, Any]]) -> bool:
    if not messages:
        return False
    last = messages[-1]
    stop = last.get("stopReason")
    return last.get("role") == "assistant" and stop is not None and stop not in TOOL_STOP_REASONS


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            block["text"]
            for block in content
            if isinstance(block, dict)
            and block.get("type") == "text"
            and isinstance(block.get("text"), str)
        ]
        return "\n".join(parts)
    return ""


def tail(text: str, max_lines: int = STDOUT_MAX_LINES, max_chars: int = STDOUT_MAX_CHARS) -> str:
    """Keep the end, like a script run's output tail."""
    lines = text.splitlines()
    if len(lines) > max_lines:
        text = "\n".join(lines[-max_lines:])
    if len(text) > max_chars:
        text = text[-max_chars:]
    return text


def finished_result(
    messages: list[dict[str, Any]], session_key: str, tokens: int | None, duration_ms: int
) -> RunResult:
    last = messages[-1]
    stdout = tail(message_text(last))
    stop = last.get("stopReason")
    if stop in FAILED_STOP_REASONS:
        detail = last.get("errorMessage")
        error = f"session stopped with stopReason {stop}"
        if isinstance(detail, str) and detail:
            error += f": {detail}"
        return RunResult(
            RunStatus.ERROR,
            duration_ms,
            stdout=stdout,
            error=error,
            tokens=tokens,
            result_meta=session_key,
        )
    return RunResult(
        RunStatus.OK, duration_ms, stdout=stdout, tokens=tokens, result_meta=session_key
    )


# --- the runner ----------------------------------------------------------------------------


class _RunFailed(Exception):
    def __init__(self, status: RunStatus, error: str, session_key: str | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.session_key = session_key


class SessionRunner:
    """Runs one session job per `run` call. Each run opens its own HTTP client (a session
    lasts minutes, so pooling across runs buys nothing) and reads the token afresh, so a
    rotated token file needs no restart."""

    def __init__(
        self,
        gateway_config: GatewayConfig,
        clock: Clock,
        sleep: Sleep = asyncio.sleep,
        *,
        environ: Mapping[str, str] | None = None,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
        logger: FilteringBoundLogger | None = None,
    ) -> None:
        self._config = gateway_config
        self._clock = clock
        self._sleep = sleep
        self._environ = os.environ if environ is None else environ
        self._request_timeout_s = request_timeout_s
        self._log: FilteringBoundLogger = logger or structlog.get_logger()

    def configure(self, gateway_config: GatewayConfig) -> None:
        """New gateway settings (SIGHUP); runs already going keep theirs."""
        self._config = gateway_config

    def _resolve_token(self) -> str:
        path = self._config.token_path
        if path is not None:
            # A configured file that cannot be read is an operator error worth naming, not a
            # reason to fall back silently to whatever the environment holds.
            try:
                token = Path(path).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                raise _RunFailed(
                    RunStatus.ERROR, f"cannot read gateway token file {path} ({reason})"
                ) from None
            if not token:
                raise _RunFailed(RunStatus.ERROR, f"gateway token file {path} is empty")
            return token
        token = self._environ.get(TOKEN_ENV, "").strip()
        if not token:
            raise _RunFailed(
                RunStatus.ERROR, f"no gateway token: set gateway.tokenPath or {TOKEN_ENV}"
            )
        return token

    async def run(self, job: Job) -> RunResult:
        started = self._clock.monotonic()
        log = self._log.bind(job_id=job.id, component="sessions")
        try:
            return await self._run(job, started, log)
        except _RunFailed as failed:
            log.warning("session run failed", error=failed.error, session_key=failed.session_key)
            return RunResult(
                failed.status,
                self._elapsed_ms(started),
                error=failed.error,
                result_meta=failed.session_key,
            )
        except Exception as exc:  # the contract: a run result, never an exception
            log.error("session run crashed", error=repr(exc))
            return RunResult(
                RunStatus.ERROR,
                self._elapsed_ms(started),
                error=f"session runner failed: {type(exc).__name__}: {exc}",
            )

    def _elapsed_ms(self, started: float) -> int:
        return max(0, round((self._clock.monotonic() - started) * 1000))

    async def _run(self, job: Job, started: float, log: FilteringBoundLogger) -> RunResult:
        timeout_ms = job.timeout_ms or DEFAULT_SESSION_TIMEOUT_MS
        try:
            prompt = load_prompt(job.script)
        except PromptError as exc:
            raise _RunFailed(RunStatus.ERROR, str(exc)) from None
        token = self._resolve_token()
        # Made in a thread: a client costs 0.1-0.2 s of CPU (TLS certificates), which on the
        # loop would hold up every fire and request.
        async with await new_async_client() as http:
            gateway = GatewayClient(
                self._config.url, token, http, timeout_s=self._request_timeout_s
            )
            try:
                spawned = await gateway.spawn(
                    prompt,
                    job.id,
                    math.ceil(timeout_ms / 1000),
                    timeout_s=min(self._request_timeout_s, max(timeout_ms / 1000, 1.0)),
                )
            except GatewayError as exc:
                raise _RunFailed(RunStatus.ERROR, exc.message) from None
            key = spawned.session_key
            log.info("session spawned", session_key=key, gateway_run_id=spawned.run_id)
            try:
                messages = await self._wait(gateway, key, started, timeout_ms)
            except asyncio.CancelledError:
                # No tool stops a session; the runTimeoutSeconds given at spawn ends it.
                log.warning(
                    "session run cancelled; the gateway session is left to end itself",
                    session_key=key,
                )
                raise
            tokens = await self._tokens(gateway, key, log)
        return finished_result(messages, key, tokens, self._elapsed_ms(started))

    async def _wait(
        self, gateway: GatewayClient, key: str, started: float, timeout_ms: int
    ) -> list[dict[str, Any]]:
        """Poll the history until the session is complete; the interval grows ×1.2 from the
        configured start up to three times it (5 s → 15 s by default)."""
        start_s = self._config.poll_interval_ms / 1000
        interval = start_s
        deadline = started + timeout_ms / 1000
        failures = 0
        while True:
            remaining = deadline - self._clock.monotonic()
            try:
                # A hung poll must not carry the run far past its timeout; the floor gives
                # the final look at the deadline time to be answered.
                timeout_s = min(self._request_timeout_s, max(remaining, 1.0))
                messages = await gateway.history(key, HISTORY_LIMIT, timeout_s=timeout_s)
                failures = 0
            except GatewayError as exc:
                failures += 1
                if not exc.transient or failures >= MAX_POLL_FAILURES:
                    raise _RunFailed(RunStatus.ERROR, exc.message, key) from None
                messages = []
            if is_complete(messages):
                return messages
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                raise _RunFailed(RunStatus.TIMEOUT, f"Session timed out after {timeout_ms} ms", key)
            # The last sleep ends at the deadline, so the session gets one final look.
            await self._sleep(min(interval, remaining))
            interval = next_poll_interval(interval, start_s)

    async def _tokens(
        self, gateway: GatewayClient, key: str, log: FilteringBoundLogger
    ) -> int | None:
        """The session is done; missing token figures are logged, not a failed run."""
        try:
            sessions = await gateway.list_sessions(LIST_ACTIVE_MINUTES, LIST_LIMIT)
        except GatewayError as exc:
            log.warning("session tokens unknown", session_key=key, error=exc.message)
            return None
        for session in sessions:
            if session.session_key == key:
                return session.total_tokens
        log.warning("session tokens unknown", session_key=key, error="not in sessions_list")
        return None
