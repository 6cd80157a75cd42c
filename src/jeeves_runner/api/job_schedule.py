"""When a job fires next: GET /jobs/:id/next, and the `next_run` of GET /jobs/:id. Read in the
job's own zone, else the runner's."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from jeeves_runner.api.deps import get_control
from jeeves_runner.api.errors import ApiError
from jeeves_runner.api.params import error_responses, json_response
from jeeves_runner.models import format_instant
from jeeves_runner.scheduling.cron import InvalidSchedule, parse, resolve_zone

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
    """The next fire of a job row; null when disabled or never firing."""
    if not row["enabled"]:
        return None
    fires = next_fires(
        row["schedule"],
        row.get("timezone"),
        request.app.state.zone,
        request.app.state.clock.now(),
        1,
    )
    return fires[0] if fires else None


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
