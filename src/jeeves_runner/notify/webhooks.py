"""Webhooks: one JSON POST per event to each configured receiver that should get it.

Nothing here may hold up a run. `send_later` only puts the delivery on a bounded queue that a
few background workers empty; when the queue is full the delivery is dropped and logged. Each
delivery is tried up to WEBHOOK_TRIES times: 429, 5xx, timeouts and connection errors are
retried with a doubling wait (Retry-After honoured up to 60 s); any other answer ends it. A
timed-out try may have arrived, so a receiver can see an event twice: it deduplicates on the
body's `id`, which is the same on every try.

With a `secret`, the body is signed: `X-Jeeves-Signature: sha256=<hex HMAC-SHA256 of the raw
body with the secret as key>`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import hmac
from dataclasses import dataclass

import httpx
import structlog
from structlog.typing import FilteringBoundLogger

from jeeves_runner.config import WebhookConfig
from jeeves_runner.http_clients import SharedClient
from jeeves_runner.notify.slack import Sleep, backoff_delay, retry_delay

WEBHOOK_TRIES = 4  # waits of 1, 2 and 4 s between them
TRY_TIMEOUT_S = 10.0
QUEUE_MAX = 1000  # deliveries waiting; past it, new ones are dropped (and logged)
WORKERS = 4  # deliveries in flight at once, so one slow receiver does not stall the others
SIGNATURE_HEADER = "X-Jeeves-Signature"
USER_AGENT = "jeeves-runner-webhook/1"


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for `body`."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


@dataclass(frozen=True, slots=True)
class Delivery:
    webhook: WebhookConfig
    event: str
    event_id: str
    job_id: str | None
    body: bytes


class WebhookSender:
    """Delivers events to the webhooks of one config (a SIGHUP builds a new sender)."""

    def __init__(
        self,
        webhooks: list[WebhookConfig],
        *,
        logger: FilteringBoundLogger | None = None,
        sleep: Sleep = asyncio.sleep,
        try_timeout_s: float = TRY_TIMEOUT_S,
        queue_max: int = QUEUE_MAX,
        workers: int = WORKERS,
    ) -> None:
        self.webhooks = {hook.name: hook for hook in webhooks}
        self._log: FilteringBoundLogger = logger or structlog.get_logger()
        self._sleep = sleep
        self._try_timeout_s = try_timeout_s
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue(maxsize=queue_max)
        self._worker_count = workers
        self._workers: set[asyncio.Task[None]] = set()
        self._busy = 0
        # Made in a thread (TLS certificates, imports), once per sender; begun now when there
        # are webhooks, so the first deliveries find it ready and go out in the order they
        # came (deliveries waiting together for the client would race each other).
        self._http = SharedClient(
            timeout=httpx.Timeout(self._try_timeout_s), follow_redirects=False
        )
        if self.webhooks:
            self._http.prime()
        # Deliveries by what became of them: sent, failed, dropped (what /metrics shows).
        self.outcomes: collections.Counter[str] = collections.Counter()

    @property
    def pending(self) -> int:
        return self._queue.qsize() + self._busy

    @property
    def workers(self) -> int:
        return len(self._workers)

    def subscribers(self, event: str) -> list[str]:
        """Names of the webhooks whose `events` list `event`."""
        return [hook.name for hook in self.webhooks.values() if event in hook.events]

    def send_later(
        self, name: str, event: str, event_id: str, body: bytes, job_id: str | None
    ) -> None:
        """Queue one delivery; never waits. Must be called from the event loop."""
        hook = self.webhooks.get(name)
        log = self._log.bind(webhook=name, event=event, event_id=event_id, component="notify")
        if hook is None:
            log.warning("webhook event dropped: no such webhook in notifications.webhooks")
            self.outcomes["dropped"] += 1
            return
        try:
            self._queue.put_nowait(Delivery(hook, event, event_id, job_id, body))
        except asyncio.QueueFull:
            log.warning("webhook event dropped: queue full", queued=self._queue.qsize())
            self.outcomes["dropped"] += 1
            return
        self._start_workers()

    def _start_workers(self) -> None:
        if len(self._workers) >= self._worker_count:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # drained by the next send or dropped at drain
        while len(self._workers) < min(self._worker_count, self._queue.qsize() + self._busy):
            task = loop.create_task(self._work())
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)

    async def _work(self) -> None:
        # A worker ends when the queue is empty; the next send starts one again, so an idle
        # runner keeps no tasks. It leaves the set itself, at once (a done callback would
        # run a moment later, and a send in that moment would count it as still working).
        me = asyncio.current_task()
        try:
            while not self._queue.empty():
                delivery = self._queue.get_nowait()
                self._busy += 1
                try:
                    sent = await self.deliver(delivery)
                    self.outcomes["sent" if sent else "failed"] += 1
                finally:
                    self._busy -= 1
                    self._queue.task_done()
        finally:
            if me is not None:
                self._workers.discard(me)

    async def deliver(self, delivery: Delivery) -> bool:
        """POST one event, retrying as the module says; True when the receiver took it
        (any 2xx). Never raises but for cancellation."""
        try:
            return await self._deliver(delivery)
        except Exception as exc:  # a notification must never take the runner down
            self._log.error(
                "webhook delivery crashed",
                webhook=delivery.webhook.name,
                event_id=delivery.event_id,
                error=repr(exc),
                component="notify",
            )
            return False

    async def _deliver(self, delivery: Delivery) -> bool:
        hook = delivery.webhook
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            "X-Jeeves-Event": delivery.event,
            "X-Jeeves-Delivery": delivery.event_id,
        }
        if hook.secret is not None:
            headers[SIGNATURE_HEADER] = sign(hook.secret, delivery.body)
        # The URL may carry a credential: logs name the webhook, never its URL.
        log = self._log.bind(
            webhook=hook.name,
            event=delivery.event,
            event_id=delivery.event_id,
            job_id=delivery.job_id,
            component="notify",
        )
        client = await self._http.get()
        for try_number in range(1, WEBHOOK_TRIES + 1):
            try:
                # httpx's timeout is per phase; this bounds the whole try.
                async with asyncio.timeout(self._try_timeout_s):
                    response = await client.post(hook.url, content=delivery.body, headers=headers)
            except (TimeoutError, httpx.TimeoutException, httpx.TransportError) as exc:
                reason = (
                    f"no answer within {self._try_timeout_s:g}s"
                    if isinstance(exc, TimeoutError | httpx.TimeoutException)
                    else f"cannot connect: {type(exc).__name__}"
                )
                if try_number == WEBHOOK_TRIES:
                    log.warning("webhook delivery failed", reason=f"{reason} on every try")
                    return False
                wait = backoff_delay(try_number)
                log.info("webhook delivery retrying", reason=reason, wait_s=wait)
                await self._sleep(wait)
                continue
            if 200 <= response.status_code <= 299:
                return True
            delay = retry_delay(
                try_number,
                response.status_code,
                response.headers.get("retry-after"),
                max_tries=WEBHOOK_TRIES,
            )
            if delay is None:
                log.warning(
                    "webhook delivery failed",
                    reason=f"HTTP {response.status_code} on try {try_number} of {WEBHOOK_TRIES}",
                )
                return False
            log.info("webhook delivery retrying", status=response.status_code, wait_s=delay)
            await self._sleep(delay)
        return False  # unreachable: the last try always returns

    async def drain(self, timeout_s: float) -> int:
        """Wait up to `timeout_s` for queued deliveries, cancel the rest, and return how many
        were abandoned."""
        if not self._workers and self._queue.empty():
            return 0
        self._start_workers()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._queue.join()
        abandoned = self.pending
        workers = set(self._workers)
        for task in workers:
            task.cancel()
        if workers:
            await asyncio.wait(workers)
        if abandoned:
            self._log.warning(
                "webhook deliveries abandoned at shutdown", count=abandoned, component="notify"
            )
        return abandoned

    async def aclose(self) -> None:
        await self._http.aclose()
