"""WebhookSender against real stand-in receivers on 127.0.0.1: signatures, retries, the
bounded queue, and a receiver that never answers."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from jeeves_runner.config import WebhookConfig
from jeeves_runner.notify.webhooks import (
    SIGNATURE_HEADER,
    WEBHOOK_TRIES,
    Delivery,
    WebhookSender,
    sign,
)
from stand_ins import HANG, Reply, WebhookStandIn

SECRET = "s3cret-with-ünïcode"
BODY = json.dumps({"id": "run-7-failed", "event": "run.failed"}).encode()


class RecordedSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def receiver() -> Iterator[WebhookStandIn]:
    with WebhookStandIn() as server:
        yield server


def hook(url: str, secret: str | None = SECRET, events: list[str] | None = None) -> WebhookConfig:
    return WebhookConfig(name="ops", url=url, events=events or ["run.failed"], secret=secret)


def deliver(sender: WebhookSender, delivery: Delivery) -> bool:
    async def go() -> bool:
        try:
            return await sender.deliver(delivery)
        finally:
            await sender.aclose()

    return asyncio.run(go())


def delivery(webhook: WebhookConfig, body: bytes = BODY) -> Delivery:
    return Delivery(webhook, "run.failed", "run-7-failed", "backup", body)


def test_the_signature_is_the_hmac_sha256_of_the_raw_body(receiver: WebhookStandIn) -> None:
    sender = WebhookSender([hook(receiver.url)], sleep=RecordedSleep())
    assert deliver(sender, delivery(hook(receiver.url))) is True
    (request,) = receiver.recorded()
    assert request.raw == BODY
    expected = hmac.new(SECRET.encode(), request.raw, hashlib.sha256).hexdigest()
    assert request.headers[SIGNATURE_HEADER.lower()] == f"sha256={expected}"
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert request.headers["x-jeeves-event"] == "run.failed"
    assert request.headers["x-jeeves-delivery"] == "run-7-failed"
    assert request.path == "/hooks/jeeves"


def test_without_a_secret_there_is_no_signature(receiver: WebhookStandIn) -> None:
    webhook = hook(receiver.url, secret=None)
    assert deliver(WebhookSender([webhook]), delivery(webhook)) is True
    assert SIGNATURE_HEADER.lower() not in receiver.recorded()[0].headers


def test_sign_matches_a_known_vector() -> None:
    # RFC 4231 test case 2.
    assert sign("Jefe", b"what do ya want for nothing?") == (
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


def test_a_500_then_a_200_is_retried_with_the_same_body(receiver: WebhookStandIn) -> None:
    receiver.script(Reply(500, {"error": "busy"}))
    sleep = RecordedSleep()
    assert deliver(WebhookSender([], sleep=sleep), delivery(hook(receiver.url))) is True
    first, second = receiver.recorded()
    assert first.raw == second.raw == BODY
    assert first.headers[SIGNATURE_HEADER.lower()] == second.headers[SIGNATURE_HEADER.lower()]
    assert sleep.calls == [1.0]


def test_429_honours_retry_after_and_5xx_backs_off_up_to_the_try_limit(
    receiver: WebhookStandIn,
) -> None:
    receiver.script(
        Reply(429, headers={"Retry-After": "3"}), Reply(502), Reply(503), Reply(504), Reply(200)
    )
    sleep = RecordedSleep()
    with capture_logs() as logs:
        assert deliver(WebhookSender([], sleep=sleep), delivery(hook(receiver.url))) is False
    assert len(receiver.recorded()) == WEBHOOK_TRIES == 4
    assert sleep.calls == [3.0, 2.0, 4.0]
    failed = [e for e in logs if e["event"] == "webhook delivery failed"]
    assert failed[0]["reason"] == "HTTP 504 on try 4 of 4"
    assert failed[0]["webhook"] == "ops"
    assert "url" not in failed[0]  # a URL may hold a credential: never logged


@pytest.mark.parametrize("status", [400, 401, 404, 410])
def test_other_refusals_are_not_retried(receiver: WebhookStandIn, status: int) -> None:
    receiver.script(Reply(status))
    sleep = RecordedSleep()
    assert deliver(WebhookSender([], sleep=sleep), delivery(hook(receiver.url))) is False
    assert len(receiver.recorded()) == 1
    assert sleep.calls == []


def test_a_try_that_times_out_is_retried(receiver: WebhookStandIn) -> None:
    receiver.script(HANG)
    sleep = RecordedSleep()
    sender = WebhookSender([], sleep=sleep, try_timeout_s=0.5)
    assert deliver(sender, delivery(hook(receiver.url))) is True
    assert len(receiver.recorded()) == 2
    assert sleep.calls == [1.0]


def test_a_receiver_that_is_not_listening_fails_after_every_try() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    sleep = RecordedSleep()
    with capture_logs() as logs:
        ok = deliver(WebhookSender([], sleep=sleep), delivery(hook(f"http://127.0.0.1:{port}/")))
    assert ok is False
    assert sleep.calls == [1.0, 2.0, 4.0]
    (failed,) = [e for e in logs if e["event"] == "webhook delivery failed"]
    assert failed["reason"] == "cannot connect: ConnectError on every try"


def run_sender(sender: WebhookSender, work: Any) -> Any:
    async def go() -> Any:
        try:
            return await work()
        finally:
            await sender.aclose()

    return asyncio.run(go())


def test_send_later_returns_at_once_and_the_queue_is_worked_in_the_background(
    receiver: WebhookStandIn,
) -> None:
    receiver.script(HANG)
    webhook = hook(receiver.url)
    sender = WebhookSender([webhook], try_timeout_s=5, workers=2)

    async def work() -> tuple[float, int]:
        loop = asyncio.get_running_loop()
        began = loop.time()
        for n in range(3):
            sender.send_later("ops", "run.failed", f"run-{n}-failed", BODY, "backup")
        took = loop.time() - began
        # The first hangs; the other two go through the second worker meanwhile.
        deadline = loop.time() + 5
        while sender.outcomes["sent"] < 2:
            assert loop.time() < deadline, "the other deliveries waited behind the hung one"
            await asyncio.sleep(0.01)
        abandoned = await sender.drain(0.05)
        return took, abandoned

    took, abandoned = run_sender(sender, work)
    assert took < 0.05
    assert abandoned == 1
    assert sender.workers == 0


def test_a_full_queue_drops_the_event_and_says_so(receiver: WebhookStandIn) -> None:
    webhook = hook(receiver.url)
    sender = WebhookSender([webhook], queue_max=2, workers=1)

    async def work() -> None:
        with capture_logs() as logs:
            for n in range(3):  # no await between them: the worker has not taken one yet
                sender.send_later("ops", "run.failed", f"run-{n}-failed", BODY, "backup")
        (dropped,) = [e for e in logs if e["event"] == "webhook event dropped: queue full"]
        assert dropped["event_id"] == "run-2-failed"
        assert await sender.drain(5) == 0

    run_sender(sender, work)
    assert sender.outcomes == {"sent": 2, "dropped": 1}
    assert [r.headers["x-jeeves-delivery"] for r in receiver.recorded()] == [
        "run-0-failed",
        "run-1-failed",
    ]


def test_an_unknown_webhook_name_is_dropped_and_logged() -> None:
    sender = WebhookSender([])

    async def work() -> None:
        with capture_logs() as logs:
            sender.send_later("pager", "run.failed", "run-1-failed", BODY, "backup")
        assert (
            logs[0]["event"] == "webhook event dropped: no such webhook in notifications.webhooks"
        )

    run_sender(sender, work)
    assert sender.outcomes == {"dropped": 1}


def test_subscribers_are_the_webhooks_listing_the_event() -> None:
    sender = WebhookSender(
        [
            WebhookConfig(name="a", url="http://x/", events=["run.failed", "run.late"]),
            WebhookConfig(name="b", url="http://y/", events=["run.late"]),
            WebhookConfig(name="c", url="http://z/", events=[]),
        ]
    )
    assert sender.subscribers("run.late") == ["a", "b"]
    assert sender.subscribers("run.failed") == ["a"]
    assert sender.subscribers("run.missed") == []
