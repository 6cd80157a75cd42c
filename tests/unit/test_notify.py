"""SlackNotifier against a real stand-in Slack server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from jeeves_runner.config import NotificationsConfig
from jeeves_runner.models import Job, RunResult, RunStatus
from jeeves_runner.notify.slack import (
    MAX_ERROR_CHARS,
    SlackNotifier,
    pick_channel,
    registration_message,
    retry_delay,
    run_message,
    shorten_error,
)
from stand_ins import HANG, Reply, SlackStandIn

TOKEN = "xoxb-test-token"


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn() as server:
        yield server


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "slack.token"
    path.write_text(f"  {TOKEN}\n", encoding="utf-8")
    return path


class RecordedSleep:
    """Stands in for asyncio.sleep so backoff is checked without waiting for it."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def make_config(slack: SlackStandIn, token_file: Path | None, **extra: Any) -> NotificationsConfig:
    return NotificationsConfig(
        slackTokenPath=None if token_file is None else str(token_file),
        slackApiUrl=slack.api_url,
        **extra,
    )


def job(**fields: Any) -> Job:
    values: dict[str, Any] = {"id": "backup", "name": "Nightly backup"} | fields
    return Job(schedule="0 3 * * *", script="/x.sh", **values)


FAILED = RunResult(RunStatus.ERROR, 12_345, exit_code=1, error="disk full")
SUCCEEDED = RunResult(RunStatus.OK, 3_400, exit_code=0)


def notify(notifier: SlackNotifier, a_job: Job, result: RunResult) -> bool:
    async def go() -> bool:
        try:
            return await notifier.notify_run(a_job, result)
        finally:
            await notifier.aclose()

    return asyncio.run(go())


# --- texts and channels ---------------------------------------------------------------------


def test_failure_is_posted_with_the_spec_text_token_and_job_channel(
    slack: SlackStandIn, token_file: Path
) -> None:
    config = make_config(slack, token_file, defaultOnFailure="C-DEFAULT")
    notifier = SlackNotifier(config)
    sent = notify(notifier, job(on_failure="C-JOB"), FAILED)

    assert sent is True
    assert notifier.outcomes == {"sent": 1}  # what /metrics counts
    assert slack.posts == [
        {"channel": "C-JOB", "text": "⚠️ *Nightly backup* failed (12.3s): disk full"}
    ]
    request = slack.requests[0]
    assert request.path == "/api/chat.postMessage"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"].startswith("application/json")


def test_success_goes_to_the_default_channel_when_the_job_sets_none(
    slack: SlackStandIn, token_file: Path
) -> None:
    config = make_config(slack, token_file, defaultOnSuccess="C-OK")
    assert notify(SlackNotifier(config), job(), SUCCEEDED) is True
    assert slack.posts == [{"channel": "C-OK", "text": "✅ *Nightly backup* completed (3.4s)"}]


def test_a_timeout_without_error_text_is_a_failure_reading_unknown_error(
    slack: SlackStandIn, token_file: Path
) -> None:
    config = make_config(slack, token_file, defaultOnFailure="C-FAIL")
    result = RunResult(RunStatus.TIMEOUT, 60_000)
    assert notify(SlackNotifier(config), job(), result) is True
    assert slack.posts == [
        {"channel": "C-FAIL", "text": "⚠️ *Nightly backup* failed (60.0s): unknown error"}
    ]


@pytest.mark.parametrize(
    ("status", "job_fields", "defaults", "expected"),
    [
        (RunStatus.ERROR, {"on_failure": "C-JOB"}, {"defaultOnFailure": "C-DEF"}, "C-JOB"),
        (RunStatus.TIMEOUT, {"on_failure": "C-JOB"}, {"defaultOnFailure": "C-DEF"}, "C-JOB"),
        (RunStatus.ERROR, {}, {"defaultOnFailure": "C-DEF"}, "C-DEF"),
        (RunStatus.OK, {"on_success": "C-JOB"}, {"defaultOnSuccess": "C-DEF"}, "C-JOB"),
        (RunStatus.OK, {}, {"defaultOnSuccess": "C-DEF"}, "C-DEF"),
        # a failure channel never receives successes, and the other way round
        (RunStatus.OK, {"on_failure": "C-JOB"}, {"defaultOnFailure": "C-DEF"}, None),
        (RunStatus.ERROR, {"on_success": "C-JOB"}, {"defaultOnSuccess": "C-DEF"}, None),
        (RunStatus.SKIPPED, {"on_failure": "C-J", "on_success": "C-J"}, {}, None),
        (RunStatus.RUNNING, {"on_failure": "C-J", "on_success": "C-J"}, {}, None),
        # someone stopped it on purpose: neither a failure nor a success
        (RunStatus.CANCELLED, {"on_failure": "C-J", "on_success": "C-J"}, {}, None),
    ],
)
def test_pick_channel(
    status: RunStatus, job_fields: dict[str, str], defaults: dict[str, str], expected: str | None
) -> None:
    assert pick_channel(job(**job_fields), status, NotificationsConfig(**defaults)) == expected


def test_per_job_channel_beats_default_on_the_wire(slack: SlackStandIn, token_file: Path) -> None:
    config = make_config(slack, token_file, defaultOnFailure="C-DEF-F", defaultOnSuccess="C-DEF-S")
    notifier = SlackNotifier(config)

    async def go() -> None:
        await notifier.notify_run(job(on_success="C-MINE"), SUCCEEDED)
        await notifier.notify_run(job(on_failure="C-ALERTS"), FAILED)
        await notifier.notify_run(job(), FAILED)
        await notifier.aclose()

    asyncio.run(go())
    assert [p["channel"] for p in slack.posts] == ["C-MINE", "C-ALERTS", "C-DEF-F"]


def test_skipped_runs_and_runs_without_a_channel_send_nothing(
    slack: SlackStandIn, token_file: Path
) -> None:
    notifier = SlackNotifier(make_config(slack, token_file, defaultOnFailure="C-F"))

    async def go() -> list[bool]:
        sent = [
            await notifier.notify_run(job(on_failure="C-X"), RunResult(RunStatus.SKIPPED, 0)),
            await notifier.notify_run(job(), SUCCEEDED),  # no success channel anywhere
        ]
        await notifier.aclose()
        return sent

    assert asyncio.run(go()) == [False, False]
    assert slack.requests == []


def test_message_text_escapes_slack_markup_and_keeps_the_end_of_a_long_error() -> None:
    long_error = "Traceback (most recent call last):\n" + "x" * 5000 + "\nValueError: <bad> & worse"
    text = run_message(job(name="A <b> & C"), RunResult(RunStatus.ERROR, 1_050, error=long_error))
    assert text is not None
    assert text.startswith("⚠️ *A &lt;b&gt; &amp; C* failed (1.1s): …xxx")
    assert text.endswith("ValueError: &lt;bad&gt; &amp; worse")
    assert "Traceback" not in text
    assert len(shorten_error(long_error)) == MAX_ERROR_CHARS


@pytest.mark.parametrize(
    ("duration_ms", "shown"),
    [(0, "0.0s"), (49, "0.0s"), (51, "0.1s"), (3_400, "3.4s"), (90_000, "90.0s")],
)
def test_duration_has_one_decimal(duration_ms: int, shown: str) -> None:
    assert run_message(job(), RunResult(RunStatus.OK, duration_ms)) == (
        f"✅ *Nightly backup* completed ({shown})"
    )


# --- Slack refusing, throttling, failing, hanging -------------------------------------------


def test_ok_false_is_a_failed_notification_that_is_logged(
    slack: SlackStandIn, token_file: Path
) -> None:
    slack.script(Reply(200, {"ok": False, "error": "channel_not_found"}))
    sleep = RecordedSleep()
    with capture_logs() as logs:
        notifier = SlackNotifier(make_config(slack, token_file), sleep=sleep)
        sent = notify(notifier, job(on_failure="C-GONE"), FAILED)

    assert sent is False
    assert len(slack.requests) == 1  # a refusal is an answer: not retried
    assert sleep.calls == []
    failures = [e for e in logs if e["event"] == "slack notification failed"]
    assert failures[0]["reason"] == "slack refused: channel_not_found"
    assert failures[0]["channel"] == "C-GONE"
    assert failures[0]["log_level"] == "warning"


def test_429_waits_as_long_as_retry_after_says_then_succeeds(
    slack: SlackStandIn, token_file: Path
) -> None:
    slack.script(Reply(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "7"}))
    sleep = RecordedSleep()
    notifier = SlackNotifier(make_config(slack, token_file), sleep=sleep)

    assert notify(notifier, job(on_failure="C1"), FAILED) is True
    assert sleep.calls == [7.0]
    assert len(slack.posts) == 2
    assert slack.posts[0] == slack.posts[1]


def test_5xx_is_retried_with_doubling_backoff_then_succeeds(
    slack: SlackStandIn, token_file: Path
) -> None:
    slack.script(Reply(500), Reply(503, {"ok": False}))
    sleep = RecordedSleep()
    notifier = SlackNotifier(make_config(slack, token_file), sleep=sleep)

    assert notify(notifier, job(on_failure="C1"), FAILED) is True
    assert sleep.calls == [1.0, 2.0]
    assert len(slack.requests) == 3


def test_gives_up_after_three_tries(slack: SlackStandIn, token_file: Path) -> None:
    slack.script(Reply(502), Reply(502), Reply(502), Reply(502))
    sleep = RecordedSleep()
    with capture_logs() as logs:
        notifier = SlackNotifier(make_config(slack, token_file), sleep=sleep)
        sent = notify(notifier, job(on_failure="C1"), FAILED)

    assert sent is False
    assert len(slack.requests) == 3
    assert sleep.calls == [1.0, 2.0]
    reasons = [e["reason"] for e in logs if e["event"] == "slack notification failed"]
    assert reasons == ["HTTP 502 on try 3 of 3"]


def test_a_retry_after_too_long_to_wait_is_not_waited_out(
    slack: SlackStandIn, token_file: Path
) -> None:
    slack.script(Reply(429, {"ok": False}, {"Retry-After": "3600"}))
    sleep = RecordedSleep()
    notifier = SlackNotifier(make_config(slack, token_file), sleep=sleep)

    assert notify(notifier, job(on_failure="C1"), FAILED) is False
    assert sleep.calls == []
    assert len(slack.requests) == 1


def test_a_rejected_token_is_not_retried(slack: SlackStandIn, token_file: Path) -> None:
    slack.script(Reply(401, {"ok": False, "error": "invalid_auth"}))
    sleep = RecordedSleep()
    notifier = SlackNotifier(make_config(slack, token_file), sleep=sleep)
    assert notify(notifier, job(on_failure="C1"), FAILED) is False
    assert len(slack.requests) == 1


def test_a_server_that_never_answers_is_given_up_on_in_bounded_time(
    slack: SlackStandIn, token_file: Path
) -> None:
    slack.script(HANG, HANG, HANG)
    sleep = RecordedSleep()
    notifier = SlackNotifier(make_config(slack, token_file), sleep=sleep, try_timeout_s=0.3)

    began = time.monotonic()
    sent = notify(notifier, job(on_failure="C1"), FAILED)
    elapsed = time.monotonic() - began

    assert sent is False
    assert elapsed < 2.0
    # Slack may have posted before going quiet, so a timed-out try is not repeated.
    assert len(slack.requests) == 1
    assert sleep.calls == []


def test_a_refused_connection_is_retried_then_given_up(token_file: Path) -> None:
    with SlackStandIn() as gone:
        api_url = gone.api_url  # the port is closed once the block ends
    config = NotificationsConfig(
        slackTokenPath=str(token_file), slackApiUrl=api_url, defaultOnFailure="C1"
    )
    sleep = RecordedSleep()
    assert notify(SlackNotifier(config, sleep=sleep), job(), FAILED) is False
    assert sleep.calls == [1.0, 2.0]


def test_a_nonsense_api_url_is_a_failed_notification_not_an_exception(token_file: Path) -> None:
    # The config file refuses such a URL; the notifier must not raise on one all the same.
    config = NotificationsConfig.model_construct(
        slack_token_path=str(token_file), slack_api_url="nowhere", default_on_failure="C1"
    )
    notifier = SlackNotifier(config, sleep=RecordedSleep())
    assert notify(notifier, job(), FAILED) is False
    assert notifier.outcomes == {"failed": 1}


@pytest.mark.parametrize(
    ("try_number", "status", "retry_after", "expected"),
    [
        (1, 429, "7", 7.0),
        (1, 429, "0", 0.0),
        (1, 429, "1.5", 1.5),
        (1, 429, None, 1.0),
        (2, 429, None, 2.0),
        (1, 429, "Wed, 21 Oct 2015 07:28:00 GMT", 1.0),  # HTTP-date: use the backoff
        (1, 429, "-3", 1.0),
        (1, 429, "61", None),  # too long to hold a notification for
        (1, 500, None, 1.0),
        (2, 503, "4", 4.0),
        (3, 503, "4", None),  # that was the last try
        (1, 200, None, None),
        (1, 400, None, None),
        (1, 401, None, None),
        (1, 404, None, None),
    ],
)
def test_retry_delay(
    try_number: int, status: int, retry_after: str | None, expected: float | None
) -> None:
    assert retry_delay(try_number, status, retry_after) == expected


# --- token ----------------------------------------------------------------------------------


def test_without_a_token_nothing_is_sent_and_the_warning_comes_once(slack: SlackStandIn) -> None:
    with capture_logs() as logs:
        notifier = SlackNotifier(make_config(slack, None, defaultOnFailure="C1"))
        assert notifier.token_missing() is True
        notifier.warn_if_token_missing()
        for _ in range(3):
            assert notify(notifier, job(), FAILED) is False
        notifier.warn_if_token_missing()
    assert notifier.outcomes == {"no_token": 3}

    assert slack.requests == []
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [w["event"] for w in warnings] == ["slack notifications disabled"]
    assert warnings[0]["reason"] == "notifications.slackTokenPath is not set"


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "cannot read Slack token file {path} (No such file or directory)"),
     ("  \n", "Slack token file {path} is empty")],
)  # fmt: skip
def test_an_unusable_token_file_is_named_in_the_warning(
    slack: SlackStandIn, tmp_path: Path, content: str | None, reason: str
) -> None:
    path = tmp_path / "token"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with capture_logs() as logs:
        notifier = SlackNotifier(make_config(slack, path))
        notifier.warn_if_token_missing()
    assert notifier.token_missing() is True
    assert logs[0]["reason"] == reason.format(path=path)


def test_with_a_token_there_is_no_warning(slack: SlackStandIn, token_file: Path) -> None:
    with capture_logs() as logs:
        notifier = SlackNotifier(make_config(slack, token_file))
        notifier.warn_if_token_missing()
    assert notifier.token_missing() is False
    assert logs == []


# --- background sending ---------------------------------------------------------------------


def test_notify_run_later_returns_at_once_and_drain_waits_for_the_posts(
    slack: SlackStandIn, token_file: Path
) -> None:
    slack.script(Reply(429, {"ok": False}, {"Retry-After": "0"}))
    notifier = SlackNotifier(make_config(slack, token_file, defaultOnFailure="C1"))

    async def go() -> tuple[int, int, int]:
        notifier.notify_run_later(job(), FAILED)
        notifier.notify_run_later(job(id="other", name="Other"), FAILED)
        queued = notifier.pending  # scheduled, nothing awaited yet
        cancelled = await notifier.drain(timeout_s=5)
        left = notifier.pending
        await notifier.aclose()
        return queued, cancelled, left

    assert asyncio.run(go()) == (2, 0, 0)
    assert sorted(p["text"] for p in slack.posts[-2:]) == [
        "⚠️ *Nightly backup* failed (12.3s): disk full",
        "⚠️ *Other* failed (12.3s): disk full",
    ]


def test_drain_cancels_notifications_that_outlast_it(slack: SlackStandIn, token_file: Path) -> None:
    slack.script(HANG)
    notifier = SlackNotifier(make_config(slack, token_file, defaultOnFailure="C1"))

    async def go() -> int:
        notifier.notify_run_later(job(), FAILED)
        cancelled = await notifier.drain(timeout_s=0.2)
        await notifier.aclose()
        return cancelled

    began = time.monotonic()
    assert asyncio.run(go()) == 1
    assert time.monotonic() - began < 2.0
    assert notifier.pending == 0


# --- registration failures at start ---------------------------------------------------------


def test_registration_failures_are_one_message_to_the_default_failure_channel(
    slack: SlackStandIn, token_file: Path
) -> None:
    notifier = SlackNotifier(make_config(slack, token_file, defaultOnFailure="C-OPS"))
    failed = [("bad-cron", "invalid schedule '61 * * * *'"), ("never", "schedule never fires")]

    async def go() -> bool:
        sent = await notifier.notify_registration_failures(5, failed)
        await notifier.aclose()
        return sent

    assert asyncio.run(go()) is True
    assert slack.posts == [
        {
            "channel": "C-OPS",
            "text": "⚠️ jeeves-runner started with 3 of 5 jobs scheduled; 2 failed to register:\n"
            "• *bad-cron*: invalid schedule '61 * * * *'\n"
            "• *never*: schedule never fires",
        }
    ]


def test_registration_failures_need_a_default_channel_and_a_failure(
    slack: SlackStandIn, token_file: Path
) -> None:
    without_channel = SlackNotifier(make_config(slack, token_file))
    with_channel = SlackNotifier(make_config(slack, token_file, defaultOnFailure="C-OPS"))

    async def go() -> list[bool]:
        sent = [
            await without_channel.notify_registration_failures(2, [("a", "bad")]),
            await with_channel.notify_registration_failures(2, []),
        ]
        await without_channel.aclose()
        await with_channel.aclose()
        return sent

    assert asyncio.run(go()) == [False, False]
    assert slack.requests == []


def test_a_long_list_of_registration_failures_is_cut() -> None:
    failed = [(f"job-{i}", "bad") for i in range(25)]
    lines = registration_message(30, failed).splitlines()
    assert lines[0] == "⚠️ jeeves-runner started with 5 of 30 jobs scheduled; 25 failed to register:"
    assert len(lines) == 1 + 20 + 1
    assert lines[-1] == "… and 5 more"


def test_registration_failures_can_be_sent_in_the_background(
    slack: SlackStandIn, token_file: Path
) -> None:
    notifier = SlackNotifier(make_config(slack, token_file, defaultOnFailure="C-OPS"))

    async def go() -> int:
        notifier.notify_registration_failures_later(1, [("a", "bad schedule")])
        cancelled = await notifier.drain(timeout_s=5)
        await notifier.aclose()
        return cancelled

    assert asyncio.run(go()) == 0
    assert [p["channel"] for p in slack.posts] == ["C-OPS"]


def test_scheduling_outside_an_event_loop_drops_the_notification_quietly(
    slack: SlackStandIn, token_file: Path
) -> None:
    notifier = SlackNotifier(make_config(slack, token_file, defaultOnFailure="C1"))
    with capture_logs() as logs:
        notifier.notify_run_later(job(), FAILED)  # no running loop here
    assert notifier.pending == 0
    assert [e["event"] for e in logs] == ["slack notification dropped: no running event loop"]
    assert slack.requests == []
