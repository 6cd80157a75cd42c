"""Session jobs against a real stand-in gateway on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from jeeves_runner.clock import Clock, FakeClock, SystemClock
from jeeves_runner.config import GatewayConfig
from jeeves_runner.execution.sessions import (
    GatewayClient,
    GatewayError,
    PromptError,
    SessionRunner,
    Sleep,
    is_complete,
    load_prompt,
    message_text,
    next_poll_interval,
    tail,
)
from jeeves_runner.models import Job, JobType, RunResult, RunStatus
from stand_ins import HANG, GatewayStandIn, Reply, gateway_ok, gateway_refusal

TOKEN = "gw-secret"
KEY = GatewayStandIn.SESSION_KEY
NOT_A_SCRIPT = "a session job takes prompt text or a .md/.txt file, not the script"


@pytest.fixture
def gateway() -> Iterator[GatewayStandIn]:
    with GatewayStandIn(TOKEN) as server:
        yield server


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.token"
    path.write_text(TOKEN + "\n", encoding="utf-8")
    return path


def session_job(script: str = "Summarise today's inbox.", **fields: Any) -> Job:
    return Job(
        id="inbox-digest",
        name="Inbox digest",
        schedule="0 8 * * *",
        script=script,
        type=JobType.SESSION,
        **fields,
    )


def runner_for(
    gateway: GatewayStandIn,
    token_file: Path | None,
    *,
    poll_interval_ms: int = 10,
    clock: Clock | None = None,
    sleep: Sleep = asyncio.sleep,
    environ: dict[str, str] | None = None,
) -> SessionRunner:
    config = GatewayConfig(
        url=gateway.base_url,
        tokenPath=None if token_file is None else str(token_file),
        pollIntervalMs=poll_interval_ms,
    )
    return SessionRunner(
        config, clock or SystemClock(), sleep, environ={} if environ is None else environ
    )


def run(runner: SessionRunner, job: Job) -> RunResult:
    return asyncio.run(runner.run(job))


USER = {"role": "user", "content": "Summarise today's inbox."}
THINKING = {"role": "assistant", "content": [{"type": "text", "text": "Let me look."}]}
TOOL_PAUSE = {"role": "assistant", "stopReason": "toolUse", "content": []}
DONE = {
    "role": "assistant",
    "stopReason": "stop",
    "content": [
        {"type": "thinking", "thinking": "..."},
        {"type": "text", "text": "3 messages need a reply."},
    ],
}


# --- whole runs -----------------------------------------------------------------------------


def test_a_session_that_completes_after_a_few_polls_records_tokens_and_output(
    gateway: GatewayStandIn, token_file: Path
) -> None:
    gateway.on(
        "sessions_history",
        gateway_ok([]),
        gateway_ok([USER]),
        gateway_ok([USER, THINKING]),
        gateway_ok([USER, TOOL_PAUSE]),
        gateway_ok([USER, THINKING, DONE]),
    )
    gateway.on(
        "sessions_list",
        gateway_ok(
            [
                {"sessionKey": "agent:main:other", "totalTokens": 99, "model": "m"},
                {"sessionKey": KEY, "totalTokens": 1234, "model": "claude"},
            ]
        ),
    )

    result = run(runner_for(gateway, token_file), session_job())

    assert result.status is RunStatus.OK
    assert result.tokens == 1234
    assert result.result_meta == KEY
    assert result.stdout == "3 messages need a reply."
    assert result.error is None
    assert result.exit_code is None
    assert result.duration_ms >= 0
    assert gateway.calls("sessions_spawn") == [
        {
            "task": "Summarise today's inbox.",
            "label": "inbox-digest",
            "thinking": "low",
            "runTimeoutSeconds": 300,  # the default five minutes
        }
    ]
    history = gateway.calls("sessions_history")
    assert len(history) == 5
    assert history[0] == {"sessionKey": KEY, "limit": 3, "includeTools": False}
    assert [r.path for r in gateway.requests] == ["/tools/invoke"] * 7
    assert {r.headers["authorization"] for r in gateway.requests} == {f"Bearer {TOKEN}"}


def test_a_session_that_never_completes_times_out_with_growing_polls(
    gateway: GatewayStandIn, token_file: Path
) -> None:
    gateway.on("sessions_history", gateway_ok([USER, THINKING]))
    clock = FakeClock(datetime(2026, 3, 2, tzinfo=UTC))
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)

    runner = runner_for(gateway, token_file, poll_interval_ms=5000, clock=clock, sleep=sleep)
    result = run(runner, session_job(timeout_ms=60_000))

    assert result.status is RunStatus.TIMEOUT
    assert result.error == "Session timed out after 60000 ms"
    assert result.result_meta == KEY
    assert result.duration_ms == 60_000
    grown = [5.0, 6.0, 7.2, 8.64, 10.368, 12.4416]
    assert sleeps[:6] == pytest.approx(grown)
    assert sleeps[6] == pytest.approx(60 - sum(grown))  # the last wait ends at the deadline
    assert len(sleeps) == 7
    assert len(gateway.calls("sessions_history")) == 8  # one more look at the deadline
    assert gateway.calls("sessions_spawn")[0]["runTimeoutSeconds"] == 60
    assert gateway.calls("sessions_list") == []


def test_a_session_that_never_completes_ends_in_real_time(
    gateway: GatewayStandIn, token_file: Path
) -> None:
    gateway.on("sessions_history", gateway_ok([USER]))
    began = time.monotonic()
    result = run(runner_for(gateway, token_file), session_job(timeout_ms=300))
    elapsed = time.monotonic() - began

    assert result.status is RunStatus.TIMEOUT
    assert result.error == "Session timed out after 300 ms"
    assert 0.3 <= elapsed < 2.0
    assert 300 <= result.duration_ms < 2000
    assert gateway.calls("sessions_spawn")[0]["runTimeoutSeconds"] == 1


def test_a_poll_that_hangs_does_not_hold_the_run_past_its_timeout(
    gateway: GatewayStandIn, token_file: Path
) -> None:
    gateway.on("sessions_history", HANG)
    began = time.monotonic()
    result = run(runner_for(gateway, token_file), session_job(timeout_ms=200))
    elapsed = time.monotonic() - began

    # The poll is cut off about a second after the deadline and the run is a timeout.
    assert result.status is RunStatus.TIMEOUT
    assert result.error == "Session timed out after 200 ms"
    assert elapsed < 3.0


def test_a_spawn_that_hangs_is_cut_off_near_the_job_timeout(
    gateway: GatewayStandIn, token_file: Path
) -> None:
    gateway.on("sessions_spawn", HANG)
    began = time.monotonic()
    result = run(runner_for(gateway, token_file), session_job(timeout_ms=200))
    assert result.status is RunStatus.ERROR
    assert result.error == "gateway did not answer sessions_spawn within 1s"
    assert time.monotonic() - began < 3.0


def test_ok_false_on_spawn_is_an_error_run(gateway: GatewayStandIn, token_file: Path) -> None:
    gateway.on("sessions_spawn", gateway_refusal("agent busy: too many children"))
    result = run(runner_for(gateway, token_file), session_job())

    assert result.status is RunStatus.ERROR
    assert result.error == "gateway refused sessions_spawn: agent busy: too many children"
    assert result.result_meta is None
    assert gateway.calls("sessions_history") == []


def test_a_prompt_file_that_does_not_exist_is_an_error_run_without_calling_the_gateway(
    gateway: GatewayStandIn, token_file: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "prompts" / "digest.md"
    result = run(runner_for(gateway, token_file), session_job(str(missing)))

    assert result.status is RunStatus.ERROR
    assert result.error == f"prompt file {missing} does not exist"
    assert gateway.requests == []


def test_a_prompt_file_is_read_and_sent_as_the_task(
    gateway: GatewayStandIn, token_file: Path, tmp_path: Path
) -> None:
    prompt = tmp_path / "digest.txt"
    prompt.write_text("Read the inbox.\nList what needs a reply.\n", encoding="utf-8")
    gateway.on("sessions_history", gateway_ok([USER, DONE]))

    result = run(runner_for(gateway, token_file), session_job(str(prompt)))

    assert result.status is RunStatus.OK
    sent = gateway.calls("sessions_spawn")[0]["task"]
    assert sent == "Read the inbox.\nList what needs a reply.\n"


def test_a_script_path_is_an_error_for_a_session_job(
    gateway: GatewayStandIn, token_file: Path
) -> None:
    result = run(runner_for(gateway, token_file), session_job("/opt/jobs/digest.js"))
    assert result.status is RunStatus.ERROR
    assert result.error == f"{NOT_A_SCRIPT} /opt/jobs/digest.js"
    assert gateway.requests == []


def test_a_bad_token_is_an_error_run_naming_http_401(
    gateway: GatewayStandIn, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong.token"
    wrong.write_text("not-the-token", encoding="utf-8")
    result = run(runner_for(gateway, wrong), session_job())

    assert result.status is RunStatus.ERROR
    assert result.error == "gateway rejected the token (HTTP 401)"
    assert len(gateway.requests) == 1


def test_without_a_token_a_session_job_fails_clearly(gateway: GatewayStandIn) -> None:
    result = run(runner_for(gateway, None, environ={}), session_job())
    assert result.status is RunStatus.ERROR
    assert result.error == "no gateway token: set gateway.tokenPath or OPENCLAW_GATEWAY_TOKEN"
    assert gateway.requests == []


def test_the_environment_token_is_used_when_no_token_path_is_set(gateway: GatewayStandIn) -> None:
    gateway.on("sessions_history", gateway_ok([DONE]))
    runner = runner_for(gateway, None, environ={"OPENCLAW_GATEWAY_TOKEN": f" {TOKEN}\n"})
    result = run(runner, session_job())
    assert result.status is RunStatus.OK
    assert gateway.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_an_unreadable_token_file_is_named_and_not_replaced_by_the_environment(
    gateway: GatewayStandIn, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.token"
    runner = runner_for(gateway, missing, environ={"OPENCLAW_GATEWAY_TOKEN": TOKEN})
    result = run(runner, session_job())
    assert result.status is RunStatus.ERROR
    assert result.error == f"cannot read gateway token file {missing} (No such file or directory)"
    assert gateway.requests == []


def test_an_unreachable_gateway_is_named(token_file: Path) -> None:
    with GatewayStandIn(TOKEN) as gone:
        url = gone.base_url  # nothing listens there once the block ends
    config = GatewayConfig(url=url, tokenPath=str(token_file), pollIntervalMs=10)
    result = run(SessionRunner(config, SystemClock(), environ={}), session_job())
    assert result.status is RunStatus.ERROR
    assert result.error == f"gateway not reachable at {url}"


def test_a_passing_gateway_hiccup_does_not_fail_the_run(
    gateway: GatewayStandIn, token_file: Path
) -> None:
    hiccup = Reply(502, {"ok": False, "error": {"message": "bad gateway"}})
    gateway.on("sessions_history", hiccup, hiccup, gateway_ok([USER, DONE]))
    result = run(runner_for(gateway, token_file), session_job())
    assert result.status is RunStatus.OK
    assert len(gateway.calls("sessions_history")) == 3


def test_three_failed_polls_in_a_row_fail_the_run(
    gateway: GatewayStandIn, token_file: Path
) -> None:
    gateway.on("sessions_history", Reply(503, {"ok": False, "error": {"message": "restarting"}}))
    result = run(runner_for(gateway, token_file), session_job())
    assert result.status is RunStatus.ERROR
    assert result.error == "gateway answered HTTP 503 to sessions_history: restarting"
    assert result.result_meta == KEY
    assert len(gateway.calls("sessions_history")) == 3


def test_a_session_that_stops_with_an_error_is_an_error_run(
    gateway: GatewayStandIn, token_file: Path
) -> None:
    broken = {"role": "assistant", "stopReason": "error", "errorMessage": "model overloaded"}
    gateway.on("sessions_history", gateway_ok([USER, broken]))
    gateway.on("sessions_list", gateway_ok([{"sessionKey": KEY, "totalTokens": 10}]))
    result = run(runner_for(gateway, token_file), session_job())
    assert result.status is RunStatus.ERROR
    assert result.error == "session stopped with stopReason error: model overloaded"
    assert result.tokens == 10


def test_missing_token_figures_do_not_fail_a_finished_session(
    gateway: GatewayStandIn, token_file: Path
) -> None:
    gateway.on("sessions_history", gateway_ok([USER, DONE]))
    gateway.on("sessions_list", gateway_refusal("list disabled"))
    result = run(runner_for(gateway, token_file), session_job())
    assert result.status is RunStatus.OK
    assert result.tokens is None
    assert result.result_meta == KEY


def test_cancelling_a_run_propagates_and_stops_polling(
    gateway: GatewayStandIn, token_file: Path
) -> None:
    gateway.on("sessions_history", gateway_ok([USER]))
    runner = runner_for(gateway, token_file, poll_interval_ms=20)

    async def go() -> None:
        task = asyncio.create_task(runner.run(session_job()))
        while len(gateway.calls("sessions_history")) < 2:
            await asyncio.sleep(0.01)
        task.cancel()
        await task

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(go())
    polls = len(gateway.calls("sessions_history"))
    time.sleep(0.1)
    assert len(gateway.calls("sessions_history")) == polls


# --- the client's error texts ---------------------------------------------------------------


def invoke(gateway: GatewayStandIn, token: str, tool: str) -> Any:
    async def go() -> Any:
        async with httpx.AsyncClient() as http:
            client = GatewayClient(gateway.base_url + "/", token, http)
            if tool == "spawn":
                return await client.spawn("task", "label", 60)
            if tool == "history":
                return await client.history(KEY, 3)
            return await client.list_sessions(10, 200)

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("tool", "reply", "message"),
    [
        ("spawn", gateway_refusal("no"), "gateway refused sessions_spawn: no"),
        (
            "spawn",
            Reply(200, {"ok": False, "error": "plain text"}),
            "gateway refused sessions_spawn: plain text",
        ),
        ("spawn", Reply(200, {"ok": False}), "gateway refused sessions_spawn: no reason given"),
        (
            "spawn",
            gateway_ok({"details": {}}),
            "gateway reply to sessions_spawn has no childSessionKey",
        ),
        (
            "spawn",
            Reply(200, ["not", "an", "object"]),
            "gateway reply to sessions_spawn is not a JSON object",
        ),
        ("spawn", Reply(500), "gateway answered HTTP 500 to sessions_spawn"),
        (
            "history",
            Reply(404, {"ok": False, "error": {"type": "not_found"}}),
            "gateway answered HTTP 404 to sessions_history: not_found",
        ),
        ("history", Reply(403), "gateway rejected the token (HTTP 403)"),
    ],
)
def test_gateway_error_texts(
    gateway: GatewayStandIn, tool: str, reply: Reply, message: str
) -> None:
    gateway.on({"spawn": "sessions_spawn", "history": "sessions_history"}[tool], reply)
    with pytest.raises(GatewayError) as caught:
        invoke(gateway, TOKEN, tool)
    assert caught.value.message == message
    assert str(caught.value) == message


def test_the_client_reads_the_shapes_the_gateway_may_give(gateway: GatewayStandIn) -> None:
    gateway.on("sessions_history", gateway_ok({"details": {"messages": [DONE]}}))
    gateway.on(
        "sessions_list",
        gateway_ok({"sessions": [{"key": KEY, "totalTokens": 5}, {"sessionKey": 3}, "junk"]}),
    )
    assert invoke(gateway, TOKEN, "history") == [DONE]
    sessions = invoke(gateway, TOKEN, "list")
    assert [(s.session_key, s.total_tokens, s.model) for s in sessions] == [(KEY, 5, None)]


# --- pure decisions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "start", "expected"),
    [(5.0, 5.0, 6.0), (6.0, 5.0, 7.2), (12.4416, 5.0, 14.92992), (14.93, 5.0, 15.0),
     (15.0, 5.0, 15.0), (0.01, 0.01, 0.012), (0.03, 0.01, 0.03)],
)  # fmt: skip
def test_next_poll_interval(current: float, start: float, expected: float) -> None:
    assert next_poll_interval(current, start) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("messages", "complete"),
    [
        ([], False),
        ([USER], False),
        ([USER, THINKING], False),  # no stopReason yet
        ([USER, TOOL_PAUSE], False),  # paused for a tool, not finished
        ([USER, DONE], True),
        ([DONE, USER], False),  # the user spoke last
        ([{"role": "assistant", "stopReason": "length"}], True),
        ([{"role": "assistant", "stopReason": "error"}], True),
        ([{"role": "assistant", "stopReason": None}], False),
    ],
)
def test_is_complete(messages: list[dict[str, Any]], complete: bool) -> None:
    assert is_complete(messages) is complete


@pytest.mark.parametrize(
    ("message", "text"),
    [
        ({"content": "plain"}, "plain"),
        (DONE, "3 messages need a reply."),
        ({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}, "a\nb"),
        ({"content": [{"type": "image"}, "junk"]}, ""),
        ({}, ""),
    ],
)
def test_message_text(message: dict[str, Any], text: str) -> None:
    assert message_text(message) == text


def test_tail_keeps_the_last_lines_and_characters() -> None:
    text = "\n".join(f"line {i}" for i in range(250))
    assert tail(text).splitlines() == [f"line {i}" for i in range(150, 250)]
    assert tail("x" * 50_000 + "END", max_chars=100) == "x" * 97 + "END"


@pytest.mark.parametrize(
    "script", ["Summarise the inbox.", "Line one\nand see notes.md", "  Check feeds  "]
)
def test_prompt_text_is_used_as_it_is(script: str) -> None:
    assert load_prompt(script) == script


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("/jobs/x.py", f"{NOT_A_SCRIPT} /jobs/x.py"),
        ("/jobs/x.SH", f"{NOT_A_SCRIPT} /jobs/x.SH"),
        ("/jobs/x.cmd", f"{NOT_A_SCRIPT} /jobs/x.cmd"),
        ("   ", "the session job's prompt is empty"),
    ],
)
def test_prompt_errors(script: str, message: str) -> None:
    with pytest.raises(PromptError) as caught:
        load_prompt(script)
    assert str(caught.value) == message


def test_an_empty_prompt_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.md"
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(PromptError, match=r"^prompt file .*empty\.md is empty$"):
        load_prompt(str(path))
