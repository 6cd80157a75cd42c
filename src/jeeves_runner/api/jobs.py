"""Jobs: list, detail, run history, manual runs, enable and disable.

Reads answer with orjson bytes built straight from the store's rows, never through
response-model validation: serialization is most of a read's cost. The models below exist so
that /openapi.json says exactly what those bytes hold.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from jeeves_runner.access_model import AuditAction
from jeeves_runner.api import audit
from jeeves_runner.api.deps import get_control
from jeeves_runner.api.errors import ApiError
from jeeves_runner.api.job_schedule import NextRunList, next_run
from jeeves_runner.api.params import JSON, LIMIT_OPENAPI, error_responses, json_response
from jeeves_runner.api.runs import RUN_FILTER_PARAMS, run_filters
from jeeves_runner.models import (
    JobType,
    OverlapPolicy,
    RunResult,
    RunStatus,
    RunTrigger,
    format_instant,
)
from jeeves_runner.scheduling.fire_schedule import utc_from_timestamp
from jeeves_runner.store.jobs_list import JobsListView
from jeeves_runner.store.protocols import Store
from jeeves_runner.store.runs_list import RunsListView

JOB_NOT_FOUND = "Job not found"

router = APIRouter(tags=["jobs"])


class JobBody(BaseModel):
    id: str
    name: str
    schedule: str
    script: str
    type: JobType
    enabled: int = Field(ge=0, le=1, description="1 when the job fires on its schedule, else 0")
    timeout_ms: int | None
    overlap_policy: OverlapPolicy
    on_failure: str | None
    on_success: str | None
    description: str | None
    created_at: str
    updated_at: str
    command: list[str] | None = Field(
        description="An argv run without a shell, instead of a script (script is then '')"
    )
    args: list[str] = Field(description="Arguments appended to the script")
    env: dict[str, str] = Field(description="Variables set for the job, before the JR_* ones")
    cwd: str | None = Field(
        description="Working folder; null: the script's folder, or the runner's for a command"
    )
    timezone: str | None = Field(description="IANA zone of the schedule; null: the runner's")
    tags: list[str]
    run_on: list[str] = Field(
        description="Cluster mode: labels a node must all carry to run the job; [] any node"
    )
    source: str | None = Field(description="The job file that defines the job, if any")
    retries: int = Field(description="Tries after a failure")
    retry_delay_ms: int = Field(description="Longest wait before the first retry")
    retry_backoff: float = Field(description="Factor by which the wait grows per retry")
    retry_max_delay_ms: int = Field(description="Cap of the wait before a retry")
    retry_on: list[str] = Field(description="What is retried: 'error', 'timeout', exit codes")
    catchup: Literal["skip", "once", "all"] = Field(
        description="What runs for fires missed while the runner was down"
    )
    catchup_max: int = Field(description="Most missed fires run under 'all'")
    catchup_window_ms: int = Field(description="Only missed fires this recent are run")
    notify: Literal["always", "change"] = Field(description="Alert on every failure, or on changes")
    notify_repeat: int = Field(description="Under 'change': alert again every N failures")
    late_after_ms: int = Field(description="Alert when a fire has not started this late")
    max_duration_ms: int | None = Field(description="Alert when a run takes longer")


class JobListItem(JobBody):
    last_status: RunStatus | None = Field(
        description="Status of the latest run that executed (skipped fires do not count)"
    )
    last_run: str | None = Field(description="When that run started; null if it never ran")
    next_run: str | None = Field(description="The next fire; null when disabled or never firing")


class JobList(BaseModel):
    jobs: list[JobListItem]


class JobDetailBody(JobBody):
    next_run: str | None = Field(description="The next fire; null when disabled or never firing")


class JobDetail(BaseModel):
    job: JobDetailBody


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
    trigger: RunTrigger
    tokens: int | None
    result_meta: str | None
    skipped_count: int | None = Field(description="On a skipped row: how many fires it stands for")
    last_skipped_at: str | None


class RunList(BaseModel):
    runs: list[RunBody]


class ResultBody(BaseModel):
    status: RunStatus
    exit_code: int | None
    duration_ms: int
    stdout: str
    stderr: str
    error: str | None
    tokens: int | None
    result_meta: str | None


class TriggerResult(BaseModel):
    result: ResultBody


class OkBody(BaseModel):
    ok: Literal[True]


class BodyCache:
    """Encoded response bodies, reused until the runner's data version moves.

    Every change that can alter a job list or a run list (a job added, edited, enabled or
    disabled; a run started, finished, skipped or pruned; by this runner or another process)
    moves `data_version`. The version is an opaque token: only equality means anything.
    Bounded in bytes; the oldest entries go first.
    """

    def __init__(self, max_bytes: int = 32 << 20) -> None:
        self.max_bytes = max_bytes
        self._version: Hashable | None = None
        self._bodies: dict[Hashable, bytes] = {}
        self._size = 0

    def get(self, version: Hashable, key: Hashable) -> bytes | None:
        return self._bodies.get(key) if version == self._version else None

    def put(self, version: Hashable, key: Hashable, body: bytes) -> None:
        if version != self._version:
            self._version, self._bodies, self._size = version, {}, 0
        if len(body) > self.max_bytes:
            return
        self._size -= len(self._bodies.pop(key, b""))
        while self._bodies and self._size + len(body) > self.max_bytes:
            self._size -= len(self._bodies.pop(next(iter(self._bodies))))
        self._bodies[key] = body
        self._size += len(body)


async def _cached_body(
    request: Request, key: Hashable, build: Callable[[Store], bytes | None]
) -> bytes | None:
    """The body for `key` at the current data version, built (and kept) when missing.

    One trip to the store's probe thread does it all: the version, the cache lookup and, on
    a miss, the build. The version is read on that thread's own connection before building,
    so a body is never kept under a version older than the data it saw... and if it saw
    newer data, the next look reads a newer version and misses, as it should."""
    cache: BodyCache = request.app.state.body_cache
    control = get_control(request)

    def look(s: Store) -> bytes | None:
        version = control.data_version(s)
        body = cache.get(version, key)
        if body is None:
            body = build(s)
            if body is not None:
                cache.put(version, key, body)
        return body

    return await control.store.probe(look)


# Routes take the Request and call get_control() themselves: FastAPI runs a plain-function
# dependency in its thread pool, which costs more than the rest of a cached read.


@router.get(
    "/jobs",
    response_model=JobList,
    openapi_extra={
        "parameters": [
            {
                "name": "tag",
                "in": "query",
                "required": False,
                "description": "Only the jobs that carry this tag.",
                "schema": {"type": "string"},
            }
        ]
    },
    summary="List all jobs with their last run",
)
async def list_jobs(request: Request) -> Response:
    tag = request.query_params.get("tag")
    # Taken on the loop, where the scheduler keeps it: each job's next_run is spliced into
    # the store's bytes, and the result kept while neither the body nor the plan moves.
    plan = get_control(request).fire_plan()
    if tag is None:
        # The whole list: the app's view, brought up to date from the store's change feed
        # (only jobs changed since the last request are read), always on the probe thread,
        # so the view has one user at a time.
        # The splice (some 784 KB for 1,000 jobs) is made there too, off the loop.
        view: JobsListView = request.app.state.jobs_list
        spliced: NextRunList = request.app.state.jobs_list_next

        def read(s: Store) -> bytes:
            return spliced.body(view, s.jobs.refresh_jobs_list(view), plan)

        return Response(content=await get_control(request).store.probe(read), media_type=JSON)

    def build(s: Store) -> bytes:
        jobs = [j for j in s.jobs.list_jobs_with_last_run() if tag in j["tags"]]
        for job in jobs:
            ts = plan.next.get(job["id"])
            job["next_run"] = None if ts is None else format_instant(utc_from_timestamp(ts))
        return orjson.dumps({"jobs": jobs})

    tagged = await _cached_body(request, ("jobs", plan.version, tag), build)
    assert tagged is not None
    return Response(content=tagged, media_type=JSON)


@router.get(
    "/jobs/{job_id}",
    response_model=JobDetail,
    responses=error_responses(404),
    summary="One job's definition",
)
async def get_job(job_id: str, request: Request) -> Response:
    row = await get_control(request).store.read(lambda s: s.jobs.get_job_row(job_id))
    if row is None:
        raise ApiError(404, JOB_NOT_FOUND)
    row["next_run"] = next_run(row, request)
    return json_response({"job": row})


@router.get(
    "/jobs/{job_id}/runs",
    response_model=RunList,
    responses=error_responses(400, 404),
    openapi_extra={"parameters": LIMIT_OPENAPI["parameters"] + RUN_FILTER_PARAMS},
    summary="A job's runs, newest first",
)
async def list_runs(job_id: str, request: Request) -> Response:
    limit, statuses, before = run_filters(request)

    def found(s: Store, body: bytes) -> bytes | None:
        # Only an empty list needs the second read: a job with runs exists.
        if body == _NO_RUNS and s.jobs.get_job_row(job_id) is None:
            return None
        return body

    view: RunsListView = request.app.state.runs_list
    if not statuses and before is None and limit <= view.depth:
        # A job's newest runs, the page a dashboard polls: the app's view, brought up to
        # date from the store's change log (only runs changed since the last request are
        # read), always on the probe thread, so the view has one user at a time.
        def read(s: Store) -> bytes | None:
            return found(s, s.runs.refresh_runs_list(view, job_id, limit))

        body = await get_control(request).store.probe(read)
    else:

        def build(s: Store) -> bytes | None:
            listed = s.runs.list_runs_json(job_id, limit, statuses=statuses, before=before)
            return found(s, listed)

        body = await _cached_body(request, ("runs", job_id, limit, statuses, before), build)
    if body is None:
        raise ApiError(404, JOB_NOT_FOUND)
    return Response(content=body, media_type=JSON)


_NO_RUNS = b'{"runs":[]}'


class RunStarted(BaseModel):
    run_id: int


@router.post(
    "/jobs/{job_id}/run",
    response_model=TriggerResult,
    responses={
        **error_responses(400, 404, 409, 503),
        202: {"model": RunStarted, "description": "With wait=false: the run's id, at once"},
    },
    summary="Run a job now and wait for its end (or, with wait=false, answer at once)",
)
async def run_job(
    job_id: str,
    request: Request,
    wait: Annotated[
        Literal["true", "false"],
        Query(description="false: answer 202 with the run id as soon as the run exists"),
    ] = "true",
) -> Response:
    # JobNotFoundError, JobAlreadyRunningError and ShuttingDownError are mapped in app.py.
    control = get_control(request)

    def started(run_id: int) -> None:
        # Recorded as soon as the run exists (it may take hours), in the background: the
        # audit log says who pressed "run" and when, and the run does not wait for it.
        audit.record_later(request, AuditAction.RUN_TRIGGERED, job_id, after={"run_id": run_id})

    # Shielded: when the server cancels requests still open at the end of its drain time, a
    # run already started stays the runner's to finish or stop (shutdownGraceMs).
    if wait == "false":
        run_id = await asyncio.shield(control.start_run(job_id))
        started(run_id)
        return json_response({"run_id": run_id}, 202)
    result = await asyncio.shield(control.trigger(job_id, on_started=started))
    return json_response({"result": result_body(result)})


def result_body(result: RunResult) -> dict[str, Any]:
    return {
        "status": result.status.value,
        "exit_code": result.exit_code,
        "duration_ms": result.duration_ms,
        "stdout": result.stdout,
        "stderr": result.stderr,
        "error": result.error,
        "tokens": result.tokens,
        "result_meta": result.result_meta,
    }


@router.post(
    "/jobs/{job_id}/enable",
    response_model=OkBody,
    responses=error_responses(404),
    summary="Enable a job; the schedule is reconciled at once",
)
async def enable_job(job_id: str, request: Request) -> Response:
    return await _set_enabled(request, job_id, True)


@router.post(
    "/jobs/{job_id}/disable",
    response_model=OkBody,
    responses=error_responses(404),
    summary="Disable a job; it does not fire until enabled again",
)
async def disable_job(job_id: str, request: Request) -> Response:
    return await _set_enabled(request, job_id, False)


async def _set_enabled(request: Request, job_id: str, enabled: bool) -> Response:
    if not await get_control(request).set_enabled(job_id, enabled):
        raise ApiError(404, JOB_NOT_FOUND)
    action = AuditAction.JOB_ENABLED if enabled else AuditAction.JOB_DISABLED
    await audit.record(request, action, job_id, after={"enabled": int(enabled)})
    return json_response({"ok": True})
