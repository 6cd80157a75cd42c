"""The runner's notifier: turns run outcomes, late starts, overdue runs and missed fires into
events (alerts on change, see `change.py`) and sends each where it should go: the job's Slack
channel or named webhook, and every webhook subscribed to the event.

Where an event goes:
- run.failed, run.recovered, run.late, run.overdue, run.missed: the job's failure destination
  (`on_failure`, else `defaultOnFailure`); run.succeeded: its success destination
  (`on_success`, else `defaultOnSuccess`). A destination is a Slack channel id, or
  `webhook:NAME`.
- and every webhook whose `events` lists the event, whatever the job.
Each webhook gets an event at most once.

Nothing here holds up a run: every entry point only schedules background work, and a failure
is logged, never raised.
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import structlog
from structlog.typing import FilteringBoundLogger

from jeeves_runner.clock import Clock
from jeeves_runner.config import NotificationsConfig
from jeeves_runner.models import Job, RunResult, RunStatus, format_instant, parse_instant
from jeeves_runner.notify.change import outcome_alerts, policy_of
from jeeves_runner.notify.slack import (
    SlackNotifier,
    failure_message,
    late_message,
    missed_message,
    overdue_message,
    recovery_message,
    run_message,
)
from jeeves_runner.notify.webhooks import WebhookSender
from jeeves_runner.notify_model import FAILURE_SIDE, WEBHOOK_PREFIX, AlertEvent, NotifyStreak
from jeeves_runner.store.errors import StoreError
from jeeves_runner.store.gateway import StoreGateway

_COUNTED = frozenset({RunStatus.OK, RunStatus.ERROR, RunStatus.TIMEOUT})
_OUTCOME_EVENTS = (AlertEvent.FAILED, AlertEvent.RECOVERED, AlertEvent.SUCCEEDED)


def event_id(event: AlertEvent, run_id: int | None, job_id: str) -> str:
    """The same on every try and in every process, so a receiver can deduplicate on it; only
    letters, digits and '-' (it fits in a URL or a file name as it is)."""
    kind = event.value.split(".", 1)[1]
    if run_id is None:
        return f"job-{''.join(c if c.isalnum() else '-' for c in job_id)}-{kind}"
    return f"run-{run_id}-{kind}"


def event_body(
    event: AlertEvent,
    job: Job,
    run: Mapping[str, Any],
    at: str,
    *,
    run_id: int | None,
    failures: int | None = None,
) -> bytes:
    """The JSON a webhook is sent (see README, "Webhooks")."""
    payload: dict[str, Any] = {
        "id": event_id(event, run_id, job.id),
        "event": event.value,
        "at": at,
        "job": {
            "id": job.id,
            "name": job.name,
            "schedule": job.schedule,
            "timezone": job.timezone,
            "tags": list(job.tags),
            "notify": job.notify,
        },
        "run": {"id": run_id, **run},
    }
    if failures is not None:
        payload["failures"] = failures
    if run_id is not None:
        # Paths on the runner's own address (the receiver knows where its runner is).
        payload["links"] = {
            "run": f"/runs/{run_id}",
            "log": f"/runs/{run_id}/log",
            "dashboard": f"/ui/runs/{run_id}",
        }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class Notifier:
    """Implements the dispatcher's NotifierLike: Slack and webhooks, with alerts on change.
    Built from one NotificationsConfig; a SIGHUP that changes it builds a new one."""

    def __init__(
        self,
        config: NotificationsConfig,
        *,
        store: StoreGateway | None,
        clock: Clock,
        slack: SlackNotifier | None = None,
        webhooks: WebhookSender | None = None,
        logger: FilteringBoundLogger | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.slack = slack if slack is not None else SlackNotifier(config)
        self.webhooks = webhooks if webhooks is not None else WebhookSender(config.webhooks)
        self._log: FilteringBoundLogger = logger or structlog.get_logger("jeeves_runner.notify")
        self._tasks: set[asyncio.Task[None]] = set()
        # One job's outcomes are counted in the order its runs ended.
        self._job_locks: dict[str, asyncio.Lock] = {}
        self._warned_unknown: set[str] = set()

    # ---- what the runner and /metrics use --------------------------------------------------

    @property
    def outcomes(self) -> Mapping[str, int]:
        """Slack messages (sent, failed, no_token) and webhook deliveries (webhook_sent,
        webhook_failed, webhook_dropped), for /metrics."""
        counts: collections.Counter[str] = collections.Counter(self.slack.outcomes)
        for outcome, count in self.webhooks.outcomes.items():
            counts[f"webhook_{outcome}"] += count
        return counts

    @property
    def pending(self) -> int:
        return len(self._tasks) + self.slack.pending + self.webhooks.pending

    def warn_if_token_missing(self) -> None:
        # Without a token Slack is off; with webhooks configured that may be the intent.
        self.slack.warn_if_token_missing()

    def notify_registration_failures_later(self, total: int, failed: list[tuple[str, str]]) -> None:
        self.slack.notify_registration_failures_later(total, failed)

    async def drain(self, timeout_s: float) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        left = 0
        if self._tasks:
            _, unfinished = await asyncio.wait(set(self._tasks), timeout=timeout_s)
            for task in unfinished:
                task.cancel()
            if unfinished:
                await asyncio.wait(unfinished)
            left += len(unfinished)
        left += await self.slack.drain(max(0.0, deadline - loop.time()))
        left += await self.webhooks.drain(max(0.0, deadline - loop.time()))
        return left

    async def aclose(self) -> None:
        await self.slack.aclose()
        await self.webhooks.aclose()

    # ---- NotifierLike ------------------------------------------------------------------------

    def notify_run_later(self, job: Job, result: RunResult, run_id: int | None = None) -> None:
        """A run's final outcome: count it into the job's streak (in the store) and send what
        the job's `notify` policy says is due. Cancelled and skipped runs send nothing."""
        if result.status not in _COUNTED or not self._listened_to(job):
            return
        self._spawn(self._outcome(job, result, run_id))

    def _listened_to(self, job: Job) -> bool:
        """Whether an outcome of `job` could reach anyone. When nothing could, its streak is
        not written either: a runner without notifications pays no write per run (the streak
        starts afresh once a destination is configured)."""
        if job.on_failure or job.on_success:
            return True
        if self.config.default_on_failure or self.config.default_on_success:
            return True
        return any(self.webhooks.subscribers(event.value) for event in _OUTCOME_EVENTS)

    def run_late(self, job: Job, run_id: int, scheduled_for: str, started_at: str) -> None:
        def send() -> None:
            late_ms = _ms_between(scheduled_for, started_at)
            run = {"scheduled_for": scheduled_for, "started_at": started_at, "late_ms": late_ms}
            text = late_message(job, scheduled_for, late_ms)
            self._send(AlertEvent.LATE, job, run, run_id, text)

        self._safely(send)

    def run_overdue(self, job: Job, run_id: int, started_at: str, elapsed_ms: int) -> None:
        run = {
            "status": "running",
            "started_at": started_at,
            "elapsed_ms": elapsed_ms,
            "max_duration_ms": job.max_duration_ms,
        }
        text = overdue_message(job, run_id, elapsed_ms)
        self._safely(lambda: self._send(AlertEvent.OVERDUE, job, run, run_id, text))

    def runs_missed(self, job: Job, run_id: int, count: int, first: str, last: str) -> None:
        run = {
            "status": "missed",
            "missed_count": count,
            "missed_first": first,
            "missed_last": last,
        }
        text = missed_message(job, count, first, last)
        self._safely(lambda: self._send(AlertEvent.MISSED, job, run, run_id, text))

    # ---- inside --------------------------------------------------------------------------------

    async def _outcome(self, job: Job, result: RunResult, run_id: int | None) -> None:
        try:
            # Unknown (the database refused): read as a first outcome, so a failure is
            # announced anyway (better twice than never); a success cannot tell a recovery.
            streak = await self._count(job, result.status) or NotifyStreak()
            alerts = outcome_alerts(
                policy_of(job.notify), job.notify_repeat, streak.failures, result.status
            )
            run = {
                "status": result.status.value,
                "exit_code": result.exit_code,
                "duration_ms": result.duration_ms,
                "error": result.error,
            }
            for event in alerts.events:
                if event is AlertEvent.FAILED:
                    text = failure_message(job, result, alerts.failures)
                elif event is AlertEvent.RECOVERED:
                    text = recovery_message(job, result, alerts.failures)
                else:
                    text = run_message(job, result)
                counted = alerts.failures if event is not AlertEvent.SUCCEEDED else None
                self._send(event, job, run, run_id, text, failures=counted, events=alerts.events)
        except Exception as exc:  # a notification must never take the runner down
            self._log.error("notification crashed", job_id=job.id, error=repr(exc))

    async def _count(self, job: Job, status: RunStatus) -> NotifyStreak | None:
        """The job's streak before this outcome, this outcome counted in; None when the
        database refused. A job deleted meanwhile reads as an empty streak."""
        if self.store is None:
            return None
        at = format_instant(self.clock.now())
        lock = self._job_locks.setdefault(job.id, asyncio.Lock())
        try:
            async with lock:
                streak = await self.store.write(
                    lambda s: s.notify_state.record_outcome(job.id, status, at)
                )
        except StoreError as exc:
            self._log.warning(
                "notification streak not recorded; alerting as if it were the first",
                job_id=job.id,
                reason=str(exc),
            )
            return None
        return streak if streak is not None else NotifyStreak()

    def _send(
        self,
        event: AlertEvent,
        job: Job,
        run: Mapping[str, Any],
        run_id: int | None,
        text: str | None,
        *,
        failures: int | None = None,
        events: tuple[AlertEvent, ...] = (),
    ) -> None:
        destination = self._destination(job, event)
        hooks = self.webhooks.subscribers(event.value)
        if destination is not None and destination.startswith(WEBHOOK_PREFIX):
            name = destination[len(WEBHOOK_PREFIX) :]
            if name in self.webhooks.webhooks:
                hooks.append(name)
            else:
                self._warn_unknown(job, destination)
        elif destination is not None and text is not None:
            skip = (
                event is AlertEvent.SUCCEEDED
                and AlertEvent.RECOVERED in events
                and self._destination(job, AlertEvent.RECOVERED) == destination
            )
            if not skip:
                # One message per channel and run: under `always` a recovery is a success
                # too, and one channel should not hear both.
                self.slack.post_later(destination, text, job_id=job.id)
        if not hooks:
            return
        at = format_instant(self.clock.now())
        body = event_body(event, job, run, at, run_id=run_id, failures=failures)
        for name in dict.fromkeys(hooks):  # each webhook once, in order
            self.webhooks.send_later(
                name, event.value, event_id(event, run_id, job.id), body, job.id
            )

    def _destination(self, job: Job, event: AlertEvent) -> str | None:
        if event in FAILURE_SIDE:
            return job.on_failure or self.config.default_on_failure
        return job.on_success or self.config.default_on_success

    def _warn_unknown(self, job: Job, destination: str) -> None:
        # Once per job and name: the job was saved before the webhook left the config.
        key = f"{job.id}\0{destination}"
        if key in self._warned_unknown:
            return
        self._warned_unknown.add(key)
        self._log.warning(
            "notification not sent: the job names a webhook that is not configured",
            job_id=job.id,
            destination=destination,
            known=sorted(self.webhooks.webhooks),
        )

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            task = asyncio.get_running_loop().create_task(work)
        except RuntimeError:
            work.close()
            self._log.error("notification dropped: no running event loop")
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _safely(self, send: Callable[[], None]) -> None:
        try:
            send()
        except Exception as exc:
            self._log.error("notification crashed", error=repr(exc))


def _ms_between(first: str, second: str) -> int:
    return int((parse_instant(second) - parse_instant(first)).total_seconds() * 1000)
