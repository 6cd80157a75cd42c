"""When a job fires next: GET /jobs/:id/next (read in the job's own zone, else the
runner's), and the `next_run` of GET /jobs and GET /jobs/:id (the scheduler's own plan)."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from jeeves_runner.api.deps import get_control
from jeeves_runner.api.errors import ApiError
from jeeves_runner.api.params import error_responses, json_response
from jeeves_runner.models import format_instant
from jeeves_runner.scheduling.cron import InvalidSchedule, parse, resolve_zone
from jeeves_runner.scheduling.fire_schedule import FirePlan, utc_from_timestamp

router = APIRouter(tags=["jobs"])

N_DEFAULT = 10
N_MAX = 100
N_ERROR = f"n must be an integer from 1 to {N_MAX}"


class NextFires(BaseModel):
    next: list[str]


def next_fires(
    schedule: str, zone_name: str | None, default_zone: tzinfo, now: datetime, count: int
) -> list[str]:
    """Up to `count` fire instants after `now` (format_instant text); none for a schedule
    that cannot fire, or one in a zone this machine does not know."""
    try:
        parsed = parse(schedule)
        zone = resolve_zone(zone_name) if zone_name is not None else default_zone
    except InvalidSchedule:
        return []
    fires: list[str] = []
    current = now
    for _ in range(count):
        fire = parsed.next_after(current, zone)
        if fire is None:
            break
        fires.append(format_instant(fire))
        current = fire
    return fires


def next_run(row: dict[str, Any], request: Request) -> str | None:
    """The next fire of a job row, as the scheduler will fire it; null when disabled or
    never firing. The same answer GET /jobs gives (both read the scheduler's plan)."""
    ts = get_control(request).fire_plan().next.get(row["id"])
    return None if ts is None else format_instant(utc_from_timestamp(ts))


# Formatted instants by timestamp: many jobs share their next fire (every `*/5 * * * *` job
# fires at once), and formatting is most of what adding `next_run` to a list costs.
_FORMATTED: dict[float, bytes] = {}
_FORMATTED_MAX = 50_000
_ITEM_START = b'{"id":"'


def _formatted(ts: float) -> bytes:
    text = _FORMATTED.get(ts)
    if text is None:
        if len(_FORMATTED) >= _FORMATTED_MAX:
            _FORMATTED.clear()
        text = _FORMATTED[ts] = b'"' + format_instant(utc_from_timestamp(ts)).encode() + b'"'
    return text


def with_next_runs(body: bytes, plan: FirePlan) -> bytes:
    """`{"jobs": [...]}` as the store encoded it, each job given its `next_run` from `plan`.

    Spliced into the bytes after each job's id, not decoded and encoded again (which would
    double the cost of an uncached GET /jobs). A job object starts `{"id":"` right after the
    array's `[` or a `,`: nothing else in a job can (no other field holds objects in an
    array, and a quote inside a string is escaped). An encoding that breaks that shape (an
    id with an escape in it, spaces) is decoded and encoded instead."""
    parts = body.split(_ITEM_START)
    out = [parts[0]]
    plan_next = plan.next
    for index in range(1, len(parts)):
        part = parts[index]
        end = part.find(b'"')
        if parts[index - 1][-1:] not in (b"[", b",") or end < 0 or b"\\" in part[:end]:
            return _with_next_runs_decoded(body, plan)
        ts = plan_next.get(part[:end].decode())
        value = b"null" if ts is None else _formatted(ts)
        out.append(part[: end + 1] + b',"next_run":' + value + part[end + 1 :])
    return _ITEM_START.join(out)


def _with_next_runs_decoded(body: bytes, plan: FirePlan) -> bytes:
    document = orjson.loads(body)
    for job in document["jobs"]:
        ts = plan.next.get(job["id"])
        job["next_run"] = None if ts is None else format_instant(utc_from_timestamp(ts))
    return orjson.dumps(document)


def _count(text: str | None) -> int:
    if text is None:
        return N_DEFAULT
    if not text.isascii() or not text.isdigit() or len(text) > 4 or not 1 <= int(text) <= N_MAX:
        raise ApiError(400, N_ERROR)
    return int(text)


@router.get(
    "/jobs/{job_id}/next",
    response_model=NextFires,
    responses=error_responses(400, 404),
    openapi_extra={
        "parameters": [
            {
                "name": "n",
                "in": "query",
                "required": False,
                "description": f"How many fires: 1 to {N_MAX}, {N_DEFAULT} when omitted.",
                "schema": {"type": "integer", "minimum": 1, "maximum": N_MAX},
            }
        ]
    },
    summary="A job's next fire instants (empty when disabled or never firing)",
)
async def job_next(job_id: str, request: Request) -> Response:
    count = _count(request.query_params.get("n"))
    job = await get_control(request).store.read(lambda s: s.jobs.get_job(job_id))
    if job is None:
        raise ApiError(404, "Job not found")
    fires = (
        next_fires(
            job.schedule,
            job.timezone,
            request.app.state.zone,
            request.app.state.clock.now(),
            count,
        )
        if job.enabled
        else []
    )
    return json_response({"next": fires})
