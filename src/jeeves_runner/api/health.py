"""Health and statistics."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from jeeves_runner.api.deps import get_control
from jeeves_runner.api.params import json_response
from jeeves_runner.clock import Clock
from jeeves_runner.models import RunStatus, format_instant

router = APIRouter(tags=["health"])

# Statuses counted as errors in the last hour: a timeout is a failed run too.
ERROR_STATUSES = (RunStatus.ERROR.value, RunStatus.TIMEOUT.value)
STATS_WINDOW = timedelta(hours=1)


class HealthBody(BaseModel):
    ok: bool = Field(
        description="True while the runner can do its work; false (with status 503) while "
        "the database refuses writes or the runner is stopping"
    )
    uptime: float = Field(description="Process uptime in seconds")
    failedRegistrations: int = Field(
        description="Jobs that failed to register with the cron scheduler"
    )
    database: str | None = Field(
        default=None, description="Only when ok is false because of it: what is wrong"
    )
    stopping: bool | None = Field(default=None, description="Only while the runner stops: true")


class StatsBody(BaseModel):
    totalJobs: int = Field(description="Total registered jobs")
    running: int = Field(description="Currently executing runs")
    failedRegistrations: int = Field(description="Jobs that failed cron registration")
    okLastHour: int = Field(description="Successful runs in the last hour")
    errorsLastHour: int = Field(description="Failed or timed-out runs finished in the last hour")


@router.get(
    "/health",
    response_model=HealthBody,
    responses={503: {"model": HealthBody, "description": "Database failing, or stopping"}},
    summary="Service health",
)
async def health(request: Request) -> Response:
    # Answered from memory alone: a locked or failing database must not slow it down.
    control = get_control(request)
    body: dict[str, object] = {
        "ok": True,
        "uptime": round(control.uptime_seconds(), 3),
        "failedRegistrations": control.failed_registrations,
    }
    problem = control.database_problem()
    if problem is not None:
        body["ok"] = False
        body["database"] = problem
    if control.stopping:
        body["ok"] = False
        body["stopping"] = True
    return json_response(body, 200 if body["ok"] else 503)


@router.get("/stats", response_model=StatsBody, summary="Aggregate job statistics")
async def stats(request: Request) -> Response:
    control = get_control(request)
    clock: Clock = request.app.state.clock
    since = format_instant(clock.now() - STATS_WINDOW)
    finished, total = await control.store.read(
        lambda s: (s.runs.finished_since(since), s.jobs.count_jobs())
    )
    return json_response(
        {
            "totalJobs": total,
            "running": control.running_count,
            "failedRegistrations": control.failed_registrations,
            "okLastHour": finished.get(RunStatus.OK.value, 0),
            "errorsLastHour": sum(finished.get(s, 0) for s in ERROR_STATUSES),
        }
    )
