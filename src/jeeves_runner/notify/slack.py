"""Slack notifications: run outcomes and start-up registration failures.

Nothing here may hold up the runner. The runner records a run first and then calls
`notify_run_later`, which only schedules a background task; a notification that fails is
logged and never changes the run. Every public coroutine returns a bool and never raises
(cancellation excepted, so shutdown can cut a stuck notification short).
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import structlog
from structlog.typing import FilteringBoundLogger

from jeeves_runner.config import NotificationsConfig
from jeeves_runner.http_clients import SharedClient
from jeeves_runner.models import Job, RunResult, RunStatus

Sleep = Callable[[float], Awaitable[None]]

MAX_TRIES = 3
TRY_TIMEOUT_S = 10.0
# A Retry-After longer than this is not waited out: the message would arrive stale and the
# task would outlive a normal shutdown drain. The notification is logged as failed instead.
MAX_RETRY_AFTER_S = 60.0
# Slack accepts 40,000 characters but folds long messages; an error is usually a stderr tail
# whose last lines say what went wrong, so a long one keeps its end.
MAX_ERROR_CHARS = 1500
MAX_LISTED_FAILURES = 20

_FAILED = frozenset({RunStatus.ERROR, RunStatus.TIMEOUT})


def slack_escape(text: str) -> str:
    """Slack reads `&`, `<` and `>` as markup; escaped, they show as themselves."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def shorten_error(error: str, limit: int = MAX_ERROR_CHARS) -> str:
    error = error.strip()
    if len(error) <= limit:
        return error
    return "…" + error[-(limit - 1) :]


def pick_channel(job: Job, status: RunStatus, config: NotificationsConfig) -> str | None:
    """The job's own channel wins over the default; statuses that are neither success nor
    failure (skipped, pending, running) notify nobody."""
    if status in _FAILED:
        return job.on_failure or config.default_on_failure
    if status is RunStatus.OK:
        return job.on_success or config.default_on_success
    return None


def run_message(job: Job, result: RunResult) -> str | None:
    seconds = f"{result.duration_ms / 1000:.1f}s"
    name = slack_escape(job.name)
    if result.status in _FAILED:
        error = slack_escape(shorten_error(result.error or "unknown error"))
        return f"⚠️ *{name}* failed ({seconds}): {error}"
    if result.status is RunStatus.OK:
        return f"✅ *{name}* completed ({seconds})"
    return None


def failure_message(job: Job, result: RunResult, failures: int) -> str | None:
    """run_message for a failure; a reminder (failures > 1, under notify: change) says how
    many runs in a row failed."""
    text = run_message(job, result)
    if text is None or failures <= 1:
        return text
    name = slack_escape(job.name)
    return text.replace(f"*{name}* failed", f"*{name}* failed again ({failures} in a row)", 1)


def recovery_message(job: Job, result: RunResult, failures: int) -> str:
    seconds = f"{result.duration_ms / 1000:.1f}s"
    runs = "run" if failures == 1 else "runs"
    return f"✅ *{slack_escape(job.name)}* recovered ({seconds}) after {failures} failed {runs}"


def late_message(job: Job, scheduled_for: str, late_ms: int) -> str:
    return (
        f"⏰ *{slack_escape(job.name)}* started {late_ms / 1000:.1f}s late (due at {scheduled_for})"
    )


def overdue_message(job: Job, run_id: int, elapsed_ms: int) -> str:
    return (
        f"⏳ *{slack_escape(job.name)}* is still running after {elapsed_ms / 1000:.1f}s "
        f"(run {run_id}, max_duration_ms {job.max_duration_ms})"
    )


def missed_message(job: Job, count: int, first: str, last: str) -> str:
    name = slack_escape(job.name)
    if count == 1:
        return f"⚠️ *{name}* missed its fire at {first}"
    return f"⚠️ *{name}* missed {count} fires from {first} to {last}"


def registration_message(total: int, failed: list[tuple[str, str]]) -> str:
    scheduled = total - len(failed)
    lines = [
        f"⚠️ jeeves-runner started with {scheduled} of {total} jobs scheduled; "
        f"{len(failed)} failed to register:"
    ]
    for job_id, reason in failed[:MAX_LISTED_FAILURES]:
        lines.append(f"• *{slack_escape(job_id)}*: {slack_escape(shorten_error(reason, 300))}")
    if len(failed) > MAX_LISTED_FAILURES:
        lines.append(f"… and {len(failed) - MAX_LISTED_FAILURES} more")
    return "\n".join(lines)


def backoff_delay(try_number: int) -> float:
    return float(2 ** (try_number - 1))


def retry_delay(
    try_number: int, status: int, retry_after: str | None, max_tries: int = MAX_TRIES
) -> float | None:
    """Seconds to wait before the next try, or None when this answer is not retried.

    `try_number` counts from 1. 429 and 5xx are retried; Retry-After (delta seconds) is
    honoured when given, else the wait doubles from 1 s. An HTTP-date Retry-After is read as
    absent: Slack sends seconds. (Webhooks use it too, with their own `max_tries`.)
    """
    if try_number >= max_tries or not (status == 429 or 500 <= status <= 599):
        return None
    backoff = backoff_delay(try_number)
    if retry_after is None:
        return backoff
    try:
        wanted = float(retry_after.strip())
    except ValueError:
        return backoff
    if not math.isfinite(wanted) or wanted < 0:
        return backoff
    if wanted > MAX_RETRY_AFTER_S:
        return None
    return wanted


@dataclass(frozen=True, slots=True)
class _Token:
    value: str | None
    problem: str | None  # why there is no token, for the start-up warning


def _read_token(path: str | None) -> _Token:
    if path is None:
        return _Token(None, "notifications.slackTokenPath is not set")
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return _Token(None, f"cannot read Slack token file {path} ({reason})")
    if not value:
        return _Token(None, f"Slack token file {path} is empty")
    return _Token(value, None)


class SlackNotifier:
    """Posts to Slack's `chat.postMessage`. The token is read once, when the notifier is built
    (the runner builds it at start); without one every notification is a quiet no-op."""

    def __init__(
        self,
        config: NotificationsConfig,
        *,
        logger: FilteringBoundLogger | None = None,
        sleep: Sleep = asyncio.sleep,
        try_timeout_s: float = TRY_TIMEOUT_S,
    ) -> None:
        self._config = config
        self._log: FilteringBoundLogger = logger or structlog.get_logger()
        self._sleep = sleep
        self._try_timeout_s = try_timeout_s
        self._token = _read_token(config.slack_token_path)
        self._warned = False
        # Made in a thread (TLS certificates, imports), not on the loop; begun now when there
        # is a token, so the first alerts find it ready and go out in the order they came
        # (alerts waiting together for the client would race each other to Slack).
        self._http = SharedClient(timeout=httpx.Timeout(try_timeout_s))
        if self._token.value is not None:
            self._http.prime()
        # Strong references: the event loop keeps only weak ones to tasks.
        self._pending: set[asyncio.Task[bool]] = set()
        # Messages due, by what became of them: sent, failed, no_token (what /metrics shows).
        self.outcomes: collections.Counter[str] = collections.Counter()

    def token_missing(self) -> bool:
        return self._token.value is None

    def warn_if_token_missing(self) -> None:
        """Called once at start; later calls say nothing, so there is no warning per run."""
        if self._warned or self._token.value is not None:
            return
        self._warned = True
        self._log.warning(
            "slack notifications disabled", reason=self._token.problem, component="notify"
        )

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def notify_run(self, job: Job, result: RunResult) -> bool:
        """True when Slack accepted a message; False when none was due or it failed."""
        try:
            channel = pick_channel(job, result.status, self._config)
            text = run_message(job, result)
            if channel is None or text is None:
                return False
            return await self._post(channel, text, job_id=job.id)
        except Exception as exc:  # a notification must never take the runner down
            self._log.error(
                "slack notification crashed", job_id=job.id, error=repr(exc), component="notify"
            )
            return False

    def notify_run_later(self, job: Job, result: RunResult, run_id: int | None = None) -> None:
        """Schedule `notify_run` in the background; must be called from the event loop.
        Called for a run's final outcome only (not for a try that will be retried)."""
        self._schedule(self.notify_run(job, result))

    def post_later(self, channel: str, text: str, *, job_id: str | None) -> None:
        """Post `text` to `channel` in the background; must be called from the event loop."""
        self._schedule(self.post(channel, text, job_id=job_id))

    async def post(self, channel: str, text: str, *, job_id: str | None) -> bool:
        try:
            return await self._post(channel, text, job_id=job_id)
        except Exception as exc:
            self._log.error(
                "slack notification crashed", job_id=job_id, error=repr(exc), component="notify"
            )
            return False

    # Alerts issue 13 adds (late, overdue, missed fires) are sent by the notifications
    # side; here they are only logged, so the dispatcher can always call them.
    def run_late(self, job: Job, run_id: int, scheduled_for: str, started_at: str) -> None:
        self._log.info("run late", job_id=job.id, run_id=run_id, scheduled_for=scheduled_for)

    def run_overdue(self, job: Job, run_id: int, started_at: str, elapsed_ms: int) -> None:
        self._log.info("run overdue", job_id=job.id, run_id=run_id, elapsed_ms=elapsed_ms)

    def runs_missed(self, job: Job, run_id: int, count: int, first: str, last: str) -> None:
        self._log.debug("runs missed", job_id=job.id, run_id=run_id, count=count)

    def notify_registration_failures_later(self, total: int, failed: list[tuple[str, str]]) -> None:
        """Schedule `notify_registration_failures`, so start-up does not wait on Slack."""
        self._schedule(self.notify_registration_failures(total, failed))

    def _schedule(self, notification: Coroutine[Any, Any, bool]) -> None:
        try:
            task = asyncio.get_running_loop().create_task(notification)
        except RuntimeError:
            notification.close()  # never awaited: close it so Python does not warn
            self._log.error("slack notification dropped: no running event loop", component="notify")
            return
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self, timeout_s: float) -> int:
        """Wait up to `timeout_s` for background notifications, cancel the rest, and return
        how many were cancelled."""
        tasks = set(self._pending)
        if not tasks:
            return 0
        _, unfinished = await asyncio.wait(tasks, timeout=timeout_s)
        for task in unfinished:
            task.cancel()
        if unfinished:
            await asyncio.wait(unfinished)
            self._log.warning(
                "slack notifications abandoned at shutdown",
                count=len(unfinished),
                component="notify",
            )
        return len(unfinished)

    async def notify_registration_failures(self, total: int, failed: list[tuple[str, str]]) -> bool:
        try:
            channel = self._config.default_on_failure
            if not failed or channel is None:
                return False
            return await self._post(channel, registration_message(total, failed), job_id=None)
        except Exception as exc:
            self._log.error("slack notification crashed", error=repr(exc), component="notify")
            return False

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, channel: str, text: str, *, job_id: str | None) -> bool:
        if self._token.value is None:
            self.outcomes["no_token"] += 1
            return False  # warned once at start
        sent = await self._send(channel, text, self._token.value, job_id=job_id)
        self.outcomes["sent" if sent else "failed"] += 1
        return sent

    async def _send(self, channel: str, text: str, token: str, *, job_id: str | None) -> bool:
        url = self._config.slack_api_url.rstrip("/") + "/chat.postMessage"
        body = json.dumps({"channel": channel, "text": text}).encode("utf-8")
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json; charset=utf-8",
        }
        log = self._log.bind(job_id=job_id, channel=channel, component="notify")
        for try_number in range(1, MAX_TRIES + 1):
            try:
                # httpx's timeout is per phase; this bounds the whole try, so a server that
                # trickles bytes cannot hold a notification for longer than one timeout.
                async with asyncio.timeout(self._try_timeout_s):
                    client = await self._http.get()
                    response = await client.post(url, content=body, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # The request never reached Slack, so a retry cannot post the message twice.
                if try_number == MAX_TRIES:
                    log.warning("slack notification failed", reason=f"cannot connect: {exc}")
                    return False
                await self._sleep(backoff_delay(try_number))
                continue
            except (TimeoutError, httpx.TimeoutException):
                # Slack may have posted it already; a retry could post it twice.
                log.warning(
                    "slack notification failed",
                    reason=f"no answer within {self._try_timeout_s:g}s",
                )
                return False
            except httpx.HTTPError as exc:
                log.warning("slack notification failed", reason=f"{type(exc).__name__}: {exc}")
                return False
            delay = retry_delay(
                try_number, response.status_code, response.headers.get("retry-after")
            )
            if delay is not None:
                log.info("slack notification retrying", status=response.status_code, wait_s=delay)
                await self._sleep(delay)
                continue
            return self._accepted(response, try_number, log)
        return False  # unreachable: the last try always returns

    @staticmethod
    def _accepted(response: httpx.Response, try_number: int, log: FilteringBoundLogger) -> bool:
        if response.status_code != 200:
            reason = f"HTTP {response.status_code}"
            if response.status_code in (401, 403):
                reason += " (Slack rejected the token)"
            elif response.status_code == 429 or response.status_code >= 500:
                retry_after = response.headers.get("retry-after")
                reason += f" on try {try_number} of {MAX_TRIES}"
                if retry_after is not None:
                    reason += f" (Retry-After: {retry_after})"
            log.warning("slack notification failed", reason=reason)
            return False
        try:
            reply = response.json()
        except ValueError:
            log.warning("slack notification failed", reason="reply is not JSON")
            return False
        if isinstance(reply, dict) and reply.get("ok") is True:
            return True
        error = reply.get("error", "no error given") if isinstance(reply, dict) else reply
        log.warning("slack notification failed", reason=f"slack refused: {error}")
        return False
