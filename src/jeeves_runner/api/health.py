"""Health and statistics."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

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
    ok: Literal[True] = Field(description="Always true if the server is responding")
    uptime: float = Field(description="Process uptime in seconds")
    failedRegistrations: int = Field(
        description="Jobs that failed to register with the cron scheduler"
    )


class StatsBody(BaseModel):
    totalJobs: int = Field(description="Total registered jobs")
    running: int = Field(description="Currently executing runs")
    failedRegistrations: int = Field(description="Jobs that failed cron registration")
    okLastHour: int = Field(description="Successful runs in the last hour")
    errorsLastHour: int = Field(description="Failed or timed-out runs finished in the last hour")


@router.get("/health", response_model=HealthBody, summary="Service health")
async def health(request: Request) -> Response:
    control = get_control(request)
    return json_response(
        {
            "ok": True,
            "uptime": round(control.uptime_seconds(), 3),
            "failedRegistrations": control.failed_registrations,
        }
    )


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
