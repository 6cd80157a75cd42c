"""Runs: one run by id, history across jobs, a run's full log (whole, its last lines, or
followed live as Server-Sent Events), and cancel.

Query parameters are read from the request and checked here, so every bad value gets one
specific sentence (400), never FastAPI's generic validation error; /openapi.json documents
them through `openapi_extra`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from jeeves_runner.access_model import AuditAction
from jeeves_runner.api import audit
from jeeves_runner.api.deps import get_control
from jeeves_runner.api.errors import ApiError
from jeeves_runner.api.params import (
    ErrorBody,
    error_responses,
    json_response,
    limit_from,
    parse_limit,
)
from jeeves_runner.auth import ANONYMOUS
from jeeves_runner.control import RunnerControl
from jeeves_runner.execution.run_log import LogSubscription
from jeeves_runner.models import (
    FINISHED_STATUSES,
    LogChunk,
    LogStream,
    RunStatus,
    format_instant,
)
from jeeves_runner.store.protocols import Store, output_as_text

RUN_NOT_FOUND = "Run not found"
CANCELLED_THROUGH_API = "Cancelled through the API"
TAIL_MAX = 1_000_000
STATUS_ERROR = "status must be one of " + ", ".join(s.value for s in RunStatus)
BEFORE_ERROR = "before must be a run id (an integer from 1)"
SINCE_ERROR = "since must be an ISO 8601 instant, e.g. 2026-03-02T01:03:00Z"
TAIL_ERROR = f"tail must be an integer from 1 to {TAIL_MAX}"
STREAM_ERROR = "stream must be stdout or stderr"
FOLLOW_ERROR = "follow must be true or false"
# How often a follower of a run this runner does not hold (another node's, or one whose
# runner is gone) looks at the store for new lines; and how often an idle stream says it is
# still there, so proxies and clients do not time it out.
POLL_S = 0.25
KEEP_ALIVE_S = 15.0
SSE = "text/event-stream"

_ID = re.compile(r"[0-9]{1,18}")

router = APIRouter(tags=["runs"])


class RunBody(BaseModel):
    id: int
    job_id: str
    started_at: str | None
    finished_at: str | None
    status: RunStatus
    exit_code: int | None
    stdout: str
    stderr: str
    duration_ms: int | None
    error: str | None
    trigger: str
    tokens: int | None
    result_meta: str | None
    skipped_count: int | None
    last_skipped_at: str | None


class RunDetailBody(RunBody):
    scheduled_for: str | None = Field(
        description="The instant a scheduled fire or a retry was due; null for a manual run"
    )
    attempt: int = Field(description="1 for a first try, 2 for the first retry, ...")
    retry_of: int | None = Field(description="On a retry: the id of the first try's run")
    missed_count: int | None = Field(description="On a missed row: how many instants it stands for")
    missed_first: str | None
    missed_last: str | None
    node_id: str | None = Field(description="The node that ran it (cluster mode)")


class RunDetail(BaseModel):
    run: RunDetailBody


class RunListBody(BaseModel):
    runs: list[RunBody]


# ---- query parameters ----------------------------------------------------------------


def statuses_from(request: Request) -> list[RunStatus]:
    """`status=`, repeatable (`status=error&status=timeout`) or comma-separated."""
    chosen: list[RunStatus] = []
    for value in request.query_params.getlist("status"):
        for part in value.split(","):
            try:
                status = RunStatus(part.strip())
            except ValueError:
                raise ApiError(400, f"{STATUS_ERROR}; got {part.strip()[:40]!r}") from None
            if status not in chosen:
                chosen.append(status)
    return chosen


# The query a dashboard or a monitor sends a job's run list all the time: none, or `limit` in
# plain digits. Read straight from the raw query string, without building Starlette's
# QueryParams (a fifth of a cached read's time on the loop); any other query string goes the
# general way below, so every answer, errors included, is the same as through it.
_PLAIN_LIMIT = re.compile(rb"(?:limit=([0-9]{1,7}))?")


def run_filters(request: Request) -> tuple[int, tuple[RunStatus, ...], int | None]:
    """`limit`, `status` and `before` of GET /jobs/:id/runs, checked in that order."""
    plain = _PLAIN_LIMIT.fullmatch(request.scope.get("query_string", b""))
    if plain is not None:
        digits = plain.group(1)
        return parse_limit(None if digits is None else digits.decode("ascii")), (), None
    return limit_from(request), tuple(statuses_from(request)), before_from(request)


def before_from(request: Request) -> int | None:
    text = request.query_params.get("before")
    if text is None:
        return None
    if not _ID.fullmatch(text) or int(text) < 1:
        raise ApiError(400, BEFORE_ERROR)
    return int(text)


def since_from(request: Request) -> str | None:
    text = request.query_params.get("since")
    if text is None:
        return None
    moment = parse_since(text.strip())
    if moment is None:
        raise ApiError(400, f"{SINCE_ERROR}; got {text[:40]!r}")
    return moment


# RFC 3339 (what OpenAPI's date-time means), plus a bare date-time or date, read as UTC.
_INSTANT = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)(?:[Tt ](\d\d):(\d\d)(?::(\d\d)(?:\.(\d+))?)?"
    r"([Zz]|[+-]\d\d:\d\d)?)?"
)


def parse_since(text: str) -> str | None:
    """`text` as a stored instant (UTC, ms), or None when it is not an instant."""
    match = _INSTANT.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = datetime(
            max(int(year), 1),  # year 0: before every run
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            min(int(second or 0), 59),  # a leap second counts as the second before it
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=UTC,
        )
    except ValueError:
        return None  # no such day or time (month 13, 25:00)
    if zone and zone not in "Zz":
        sign = 1 if zone[0] == "+" else -1
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        try:
            moment -= sign * offset
        except OverflowError:
            moment = (
                datetime.min.replace(tzinfo=UTC) if sign > 0 else datetime.max.replace(tzinfo=UTC)
            )
    return format_instant(moment)


def tail_from(request: Request) -> int | None:
    text = request.query_params.get("tail")
    if text is None:
        return None
    if not re.fullmatch(r"[0-9]{1,7}", text) or not 1 <= int(text) <= TAIL_MAX:
        raise ApiError(400, TAIL_ERROR)
    return int(text)


def streams_from(request: Request) -> list[LogStream] | None:
    """The streams a log view shows: one of the child's, plus the runner's own lines (which
    speak of the log as a whole); None for all."""
    text = request.query_params.get("stream")
    if text is None:
        return None
    if text not in (LogStream.STDOUT.value, LogStream.STDERR.value):
        raise ApiError(400, STREAM_ERROR)
    return [LogStream(text), LogStream.RUNNER]


def follow_from(request: Request) -> bool:
    text = request.query_params.get("follow", "false")
    if text not in ("true", "false"):
        raise ApiError(400, FOLLOW_ERROR)
    return text == "true"


def run_id_from(text: str) -> int:
    """A path's run id; anything that is not one names no run."""
    if not _ID.fullmatch(text):
        raise ApiError(404, RUN_NOT_FOUND)
    return int(text)


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


STATUS_PARAM = _query(
    "status",
    {"type": "array", "items": {"type": "string", "enum": [s.value for s in RunStatus]}},
    "Only runs with one of these statuses; repeat it (status=error&status=timeout).",
)
BEFORE_PARAM = _query(
    "before",
    {"type": "integer", "minimum": 1, "maximum": 10**18 - 1},
    "Only runs with an id below this one: pass the last id of a page to get the next.",
)
LIMIT_PARAM = _query(
    "limit",
    {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
    "Most runs to return: 1 to 1000, 50 when omitted.",
)
SINCE_PARAM = _query(
    "since",
    {"type": "string", "format": "date-time"},
    "Only runs that started (or, pending, were due) at or after this instant.",
)
RUN_FILTER_PARAMS = [STATUS_PARAM, BEFORE_PARAM]


@router.get(
    "/runs",
    response_model=RunListBody,
    responses=error_responses(400),
    openapi_extra={"parameters": [STATUS_PARAM, SINCE_PARAM, BEFORE_PARAM, LIMIT_PARAM]},
    summary="Runs of every job, newest first (e.g. the failures since yesterday)",
)
async def list_all_runs(request: Request) -> Response:
    limit = limit_from(request)
    statuses = statuses_from(request)
    since = since_from(request)
    before = before_from(request)
    rows = await get_control(request).store.read(
        lambda s: s.runs.list_all_runs(limit, statuses=statuses, since=since, before=before)
    )
    return json_response({"runs": [output_as_text(r) for r in rows]})


@router.get(
    "/runs/{run_id}",
    response_model=RunDetail,
    responses=error_responses(404),
    summary="One run, every field",
)
async def get_run(run_id: str, request: Request) -> Response:
    number = run_id_from(run_id)
    row = await get_control(request).store.read(lambda s: s.runs.get_run(number))
    if row is None:
        raise ApiError(404, RUN_NOT_FOUND)
    return json_response({"run": output_as_text(row)})


@router.post(
    "/runs/{run_id}/cancel",
    response_model=RunDetail,
    responses={
        **error_responses(404, 503),
        409: {
            "model": ErrorBody,
            "description": "The run has already finished, or is not in flight in this runner",
        },
    },
    summary="Stop a run (TERM, then KILL of its group after 5 s) and answer once recorded; "
    "on a failed try whose retry waits, the retry is cancelled (and answered)",
)
async def cancel_run(run_id: str, request: Request) -> Response:
    number = run_id_from(run_id)
    control = get_control(request)
    row = await control.store.read(lambda s: s.runs.get_run(number))
    if row is None:
        raise ApiError(404, RUN_NOT_FOUND)
    if RunStatus(row["status"]) in FINISHED_STATUSES:
        # A failed try whose retry waits for its time: cancelling it cancels the retry.
        finished = row
        retry = await control.store.read(lambda s: _waiting_retry(s, finished))
        if retry is None:
            raise ApiError(409, f"Run {number} has already finished ({row['status']})")
        number = retry
    # Who asked: the token's name when the runner has tokens.
    actor = getattr(request.state, "actor", None)
    reason = CANCELLED_THROUGH_API
    if actor is not None and actor != ANONYMOUS:
        reason = f"{CANCELLED_THROUGH_API} by token '{actor}'"
    # Shielded: a client that hangs up does not take the cancel back half-way.
    if not await asyncio.shield(control.cancel_run(number, reason)):
        row = await control.store.read(lambda s: s.runs.get_run(number))
        if row is not None and RunStatus(row["status"]) in FINISHED_STATUSES:
            raise ApiError(409, f"Run {number} has already finished ({row['status']})")
        raise ApiError(409, f"Run {number} is not in flight in this runner")
    row = await control.store.read(lambda s: s.runs.get_run(number))
    assert row is not None
    audit.record_later(request, AuditAction.RUN_CANCELLED, row["job_id"], after={"run_id": number})
    return json_response({"run": output_as_text(row)})


def _waiting_retry(store: Store, row: dict[str, Any]) -> int | None:
    """The pending retry that follows the run `row` in its chain of tries, if any."""
    first = row["retry_of"] if row["retry_of"] is not None else row["id"]
    for retry in store.runs.pending_retries():
        if retry.retry_of == first and retry.attempt > int(row["attempt"]):
            return retry.run_id
    return None


# ---- logs ----------------------------------------------------------------------------


def log_text(chunks: list[LogChunk], tail: int | None = None) -> bytes:
    """`<instant> <stream> <line>` per line. Built with bytes.replace per chunk: a 10 MiB
    log is a few milliseconds, not a Python loop over its lines."""
    parts: list[bytes] = []
    for chunk in chunks:
        prefix = f"{chunk.at} {chunk.stream.value} ".encode()
        parts.append(prefix + chunk.data[:-1].replace(b"\n", b"\n" + prefix) + b"\n")
    body = b"".join(parts)
    if tail is not None:
        lines = body.split(b"\n", body.count(b"\n") - tail) if body.count(b"\n") > tail else None
        if lines is not None:
            body = lines[-1]
    # Whatever the child printed, the answer is UTF-8 (checked in C; rebuilt only when not).
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("utf-8", errors="replace").encode()
    return body


LOG_PARAMS = [
    _query("stream", {"type": "string", "enum": ["stdout", "stderr"]}, "Only this stream"),
    _query(
        "tail",
        {"type": "integer", "minimum": 1, "maximum": TAIL_MAX},
        "Only the last N lines (with follow=true: of what was printed so far)",
    ),
    _query(
        "follow",
        {"type": "string", "enum": ["true", "false"]},
        "true: Server-Sent Events, each line as it is read, then `end` with the final status",
    ),
]


@router.get(
    "/runs/{run_id}/log",
    responses={
        200: {
            "description": "The log, one line per line: `<instant> <stream> <text>`; "
            "with follow=true, Server-Sent Events (`line`, then `end`)",
            "content": {
                "text/plain": {"schema": {"type": "string"}},
                SSE: {"schema": {"type": "string"}},
            },
        },
        **error_responses(400, 404),
    },
    response_class=Response,
    openapi_extra={"parameters": LOG_PARAMS},
    summary="A run's full log: whole, its last lines, or followed live",
)
async def get_log(run_id: str, request: Request) -> Response:
    number = run_id_from(run_id)
    streams = streams_from(request)
    tail = tail_from(request)
    follow = follow_from(request)
    control = get_control(request)
    if follow:
        # Subscribed before anything is read: no line falls between the store and the feed.
        subscription = control.subscribe_log(number)
        try:
            row = await control.store.read(lambda s: s.runs.get_run(number))
        except BaseException:
            if subscription is not None:
                subscription.close()
            raise
        if row is None:
            if subscription is not None:
                subscription.close()
            raise ApiError(404, RUN_NOT_FOUND)
        events = _follow(control, number, streams, subscription, tail)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(events, media_type=SSE, headers=headers)

    def read(s: Store) -> list[LogChunk] | None:
        if s.runs.get_run(number) is None:
            return None
        if tail is not None:
            return s.logs.read_log_tail(number, tail, streams=streams)
        return s.logs.read_log(number, streams=streams)

    chunks = await control.store.read(read)
    if chunks is None:
        raise ApiError(404, RUN_NOT_FOUND)
    return Response(log_text(chunks, tail), media_type="text/plain; charset=utf-8")


def _events(
    chunks: list[LogChunk], streams: Collection[LogStream] | None, last: int | None = None
) -> bytes:
    """Each line as an event; with `last`, only the last `last` lines."""
    chosen = [c for c in chunks if streams is None or c.stream in streams]
    skip = 0
    if last is not None:
        skip = max(sum(c.data.count(b"\n") for c in chosen) - last, 0)
    out: list[bytes] = []
    for chunk in chosen:
        lines = chunk.lines()
        if skip:
            dropped = min(skip, len(lines))
            lines = lines[dropped:]
            skip -= dropped
        for line in lines:
            data = orjson.dumps(
                {
                    "stream": chunk.stream.value,
                    "at": chunk.at,
                    "line": line.decode("utf-8", errors="replace"),
                }
            )
            out.append(b"event: line\ndata: " + data + b"\n\n")
    return b"".join(out)


def _end_event(row: dict[str, Any] | None) -> bytes:
    body = {
        key: (row or {}).get(key)
        for key in ("id", "status", "exit_code", "error", "duration_ms", "finished_at")
    }
    return b"event: end\ndata: " + orjson.dumps(body) + b"\n\n"


async def _follow(
    control: RunnerControl,
    run_id: int,
    streams: Collection[LogStream] | None,
    subscription: LogSubscription | None,
    tail: int | None = None,
) -> AsyncIterator[bytes]:
    """What was printed so far (its last `tail` lines), then each new line as it is read,
    then `end`."""
    try:
        if subscription is not None:
            # A run of this runner: lines come from the live feed as they are read.
            until = subscription.backlog_until
            stored = await control.store.read(
                lambda s: s.logs.read_log(run_id, streams=streams, before_seq=until)
            )
            # What the live feed holds already belongs to "so far" too.
            yield _events(stored + subscription.take_ready(), streams, tail)
            while True:
                try:
                    chunks = await asyncio.wait_for(subscription.next_chunks(), KEEP_ALIVE_S)
                except TimeoutError:
                    yield b": still running\n\n"
                    continue
                if chunks is None:
                    break
                yield _events(chunks, streams)
        else:
            # Another node's run, or one already finished: the store has it all, or will.
            last = -1
            idle = 0.0
            first: int | None = tail
            while True:
                row, chunks = await control.store.read(_run_and_log_after(run_id, streams, last))
                if chunks:
                    last = chunks[-1].seq
                    idle = 0.0
                    yield _events(chunks, streams, first)
                first = None
                if row is None or RunStatus(row["status"]) in FINISHED_STATUSES:
                    break
                if idle >= KEEP_ALIVE_S:
                    idle = 0.0
                    yield b": still running\n\n"
                await asyncio.sleep(POLL_S)
                idle += POLL_S
        row = await control.store.read(lambda s: s.runs.get_run(run_id))
        yield _end_event(row)
    finally:
        if subscription is not None:
            subscription.close()


def _run_and_log_after(
    run_id: int, streams: Collection[LogStream] | None, after: int
) -> Callable[[Store], tuple[dict[str, Any] | None, list[LogChunk]]]:
    # The row first: when it says the run has finished, the log read after it is complete
    # (a run's end and the rest of its log are one commit).
    def read(s: Store) -> tuple[dict[str, Any] | None, list[LogChunk]]:
        return s.runs.get_run(run_id), s.logs.read_log(run_id, streams=streams, after_seq=after)

    return read
