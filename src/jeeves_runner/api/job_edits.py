"""Jobs: create, edit, delete, and PATCH enable/disable beside the contract's POST ones.

Bodies use the field names GET /jobs/:id returns. Every rule of `add-job` applies
(`jobs.rules`); an unknown field is named, with the known one it most looks like. The body is
read and checked here rather than by FastAPI, so each problem gets one sentence naming its
field; the models below only tell /openapi.json what a body may hold.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jeeves_runner.access_model import AuditAction
from jeeves_runner.api import audit
from jeeves_runner.api.deps import get_control
from jeeves_runner.api.errors import ApiError
from jeeves_runner.api.job_schedule import next_run
from jeeves_runner.api.jobs import JOB_NOT_FOUND, JobDetail, OkBody, disable_job, enable_job
from jeeves_runner.api.params import error_responses, json_response
from jeeves_runner.config import job_destination_problem
from jeeves_runner.control import JobManagedByFileError
from jeeves_runner.jobs.rules import JobRuleError, build_job, policy_fields
from jeeves_runner.models import JOB_POLICY_FIELDS, Job

router = APIRouter(tags=["jobs"])

BODY_NOT_OBJECT = "The request body must be a JSON object"
INVALID_JSON = "Request body is not valid JSON"
ID_MISMATCH = "id: cannot be changed (the path names the job)"
FORCE_ERROR = "force must be true or false"


class _Fields(BaseModel):
    # strict: "5" is not 5; a caller should say what it means.
    model_config = ConfigDict(extra="forbid", strict=True)


class _Policies(_Fields):
    """Issue 13's fields: retries, catch-up and alerts. Omitted: the default."""

    retries: int | None = Field(default=None, description="Tries after a failure (default 0)")
    retry_delay_ms: int | None = Field(
        default=None, description="Longest wait before the first retry (default 10000)"
    )
    retry_backoff: float | None = Field(
        default=None, description="Factor by which the wait grows per retry (default 2)"
    )
    retry_max_delay_ms: int | None = Field(
        default=None, description="Cap of the wait before a retry (default 600000)"
    )
    retry_on: list[str | int] | None = Field(
        default=None,
        description="What is retried: 'error', 'timeout' and exit codes "
        "(default ['error', 'timeout'])",
    )
    catchup: Literal["skip", "once", "all"] | None = Field(
        default=None, description="Fires missed while the runner was down (default 'skip')"
    )
    catchup_max: int | None = Field(
        default=None, description="Most missed fires run under 'all' (default 10)"
    )
    catchup_window_ms: int | None = Field(
        default=None, description="Only missed fires this recent are run (default 86400000)"
    )
    notify: Literal["always", "change"] | None = Field(
        default=None, description="Alert on every failure, or on changes (default 'change')"
    )
    notify_repeat: int | None = Field(
        default=None, description="Under 'change': alert again every N failures (default 10)"
    )
    late_after_ms: int | None = Field(
        default=None, description="Alert when a fire has not started this late (default 60000)"
    )
    max_duration_ms: int | None = Field(
        default=None, description="Alert when a run takes longer (default null: never)"
    )


class JobChange(_Policies):
    """PATCH /jobs/:id: only the fields given change; null clears an optional one."""

    id: str | None = Field(default=None, description="If given, must be the path's id")
    name: str | None = None
    schedule: str | None = None
    script: str | None = Field(
        default=None, description="Absolute script path, or prompt text for a session job"
    )
    type: Literal["script", "session"] | None = None
    enabled: bool | Literal[0, 1] | None = None
    timeout_ms: int | None = None
    overlap_policy: Literal["skip", "queue", "allow"] | None = None
    on_failure: str | None = None
    on_success: str | None = None
    description: str | None = None
    command: list[str] | None = Field(
        default=None, description="An argv run without a shell; replaces the script"
    )
    args: list[str] | None = None
    env: dict[str, str] | None = None
    cwd: str | None = Field(default=None, description="Absolute path of an existing folder")
    timezone: str | None = None
    tags: list[str] | None = None
    run_on: list[str] | None = Field(
        default=None, description="Cluster mode: labels a node must all carry to run the job"
    )


class JobCreate(_Policies):
    """POST /jobs."""

    id: str
    name: str
    schedule: str
    script: str | None = Field(
        default=None,
        description="Absolute script path, or prompt text for a session job; or give command",
    )
    type: Literal["script", "session"] = "script"
    enabled: bool | Literal[0, 1] = True
    timeout_ms: int | None = None
    overlap_policy: Literal["skip", "queue", "allow"] = "skip"
    on_failure: str | None = None
    on_success: str | None = None
    description: str | None = None
    command: list[str] | None = Field(
        default=None, description="An argv run without a shell, instead of a script"
    )
    args: list[str] = Field(default_factory=list, description="Appended to the script")
    env: dict[str, str] = Field(
        default_factory=dict, description="Variables for the job, set before the JR_* ones"
    )
    cwd: str | None = Field(
        default=None,
        description="Absolute folder to run in; default: the script's folder (the runner's "
        "for a command)",
    )
    timezone: str | None = Field(default=None, description="IANA zone; default: the runner's")
    tags: list[str] = Field(default_factory=list)
    run_on: list[str] = Field(
        default_factory=list,
        description="Cluster mode: labels a node must all carry to run the job (empty: any)",
    )


# What GET /jobs/:id shows but only the runner sets.
_READ_ONLY = ("created_at", "updated_at", "last_status", "last_run", "next_run", "source")
_REQUIRED_NOT_NULL = (
    "id",
    "name",
    "schedule",
    "type",
    "enabled",
    "overlap_policy",
    *(name for name in JOB_POLICY_FIELDS if name != "max_duration_ms"),
)
# Checked by the job rules, which name the item at fault (an env value that is not a string).
_RULE_CHECKED = ("command", "args", "env", "tags", "run_on", *JOB_POLICY_FIELDS)


def _body_openapi(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


async def _read_object(request: Request, model: type[BaseModel]) -> dict[str, Any]:
    """The body as a JSON object with known fields only, each of the right type."""
    raw = await request.body()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:  # integers beyond 64 bits, which orjson refuses, are still JSON
            data = json.loads(raw)
        except ValueError:
            raise ApiError(400, INVALID_JSON) from None
    if not isinstance(data, dict):
        raise ApiError(400, BODY_NOT_OBJECT)
    for key in _READ_ONLY:
        if key in data:
            raise ApiError(400, f"{key}: is set by the runner and cannot be given")
    known = list(model.model_fields)
    unknown = [key for key in data if key not in model.model_fields]
    if unknown:
        raise ApiError(400, "; ".join(_unknown_field(key, known) for key in unknown))
    for key in _REQUIRED_NOT_NULL:
        if key in data and data[key] is None:
            raise ApiError(400, f"{key}: must not be null")
    try:
        model.model_validate({k: v for k, v in data.items() if k not in _RULE_CHECKED})
    except ValidationError as exc:
        raise ApiError(400, _describe(exc)) from None
    return data


def _unknown_field(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{key}: unknown field{hint}"


_EXPECTED = {
    "enabled": "true, false, 1 or 0",
    "timeout_ms": "an integer number of milliseconds or null",
    "type": "'script' or 'session'",
    "overlap_policy": "'skip', 'queue' or 'allow'",
}


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    loc = [str(p) for p in first["loc"]]
    field = loc[0] if loc else "body"
    if first["type"] == "missing":
        return f"{field}: is required"
    expected = _EXPECTED.get(field, "a string")
    got = json.dumps(first.get("input"), ensure_ascii=False)
    if len(got) > 60:
        got = got[:57] + "..."
    return f"{field}: must be {expected}, got {got}"


def _check(fields: dict[str, Any], now_job: Job | None, request: Request) -> Job:
    """The job the fields describe (over `now_job` for an edit), through every add-job rule.
    Relative script paths have no meaning over HTTP: the runner's working folder is an
    accident of how it was started."""
    base = _as_fields(now_job) if now_job is not None else {}
    # A command given replaces the script, and a script given replaces the command.
    if fields.get("command") is not None and "script" not in fields:
        base["script"] = None
        base["args"] = []  # a script's args; a command carries its own
    if fields.get("script") and "command" not in fields:
        base["command"] = None
    merged = {**base, **fields}
    script = merged.get("script")
    command = merged.get("command")
    is_file = merged.get("type", "script") == "script" and command is None
    if is_file and isinstance(script, str) and not Path(script).expanduser().is_absolute():
        raise ApiError(400, f"script: must be an absolute path, got {script!r}")
    work_dir = merged.get("cwd")
    if work_dir is not None and not Path(work_dir).is_absolute():
        raise ApiError(400, f"cwd: must be an absolute path, got {work_dir!r}")
    try:
        job = build_job(
            job_id=merged["id"],
            name=merged["name"],
            schedule=merged["schedule"],
            script=script,
            job_type=merged.get("type", "script"),
            description=merged.get("description"),
            timeout_ms=merged.get("timeout_ms"),
            overlap=merged.get("overlap_policy", "skip"),
            on_failure=merged.get("on_failure"),
            on_success=merged.get("on_success"),
            enabled=bool(merged.get("enabled", True)),
            cwd=Path("/"),
            now=request.app.state.clock.now(),
            command=command,
            args=_given(merged.get("args"), ()),
            env=_given(merged.get("env"), {}),
            work_dir=work_dir,
            timezone=merged.get("timezone"),
            tags=_given(merged.get("tags"), ()),
            run_on=_given(merged.get("run_on"), ()),
            policies={name: merged[name] for name in JOB_POLICY_FIELDS if name in merged},
        )
    except JobRuleError as exc:
        raise ApiError(400, _api_field_names(str(exc))) from None
    problem = job_destination_problem(
        job.on_failure, job.on_success, request.app.state.webhook_names()
    )
    if problem is not None:
        raise ApiError(400, problem)
    return job


def checked_job(fields: dict[str, Any], now_job: Job | None, request: Request) -> Job:
    """The same checks for the dashboard's edit form: raises ApiError(400, sentence)."""
    return _check(fields, now_job, request)


# The rules name fields as add-job's options do; the API names them as its bodies do.
_OPTION_TO_FIELD = {"timeout: ": "timeout_ms: ", "overlap: ": "overlap_policy: "}


def _api_field_names(message: str) -> str:
    for option, field in _OPTION_TO_FIELD.items():
        if message.startswith(option):
            return field + message[len(option) :]
    return message


def _given(value: Any, empty: Any) -> Any:
    return empty if value is None else value


def _as_fields(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "name": job.name,
        "schedule": job.schedule,
        "script": job.script,
        "type": job.type.value,
        "enabled": job.enabled,
        "timeout_ms": job.timeout_ms,
        "overlap_policy": job.overlap_policy.value,
        "on_failure": job.on_failure,
        "on_success": job.on_success,
        "description": job.description,
        "command": list(job.command) if job.command is not None else None,
        "args": list(job.args),
        "env": dict(job.env),
        "cwd": job.cwd,
        "timezone": job.timezone,
        "tags": list(job.tags),
        "run_on": list(job.run_on),
        **policy_fields(job),
    }


@router.post(
    "/jobs",
    status_code=201,
    response_model=JobDetail,
    responses=error_responses(400, 409, 503),
    openapi_extra=_body_openapi(JobCreate),
    summary="Add a job; it is scheduled at once",
)
async def create_job(request: Request) -> Response:
    fields = await _read_object(request, JobCreate)
    job = _check(fields, None, request)
    # JobExistsError (409) and StoreError (503) are mapped in app.py.
    row = await get_control(request).create_job(job)
    await audit.record(request, AuditAction.JOB_ADDED, job.id, after=row)
    row["next_run"] = next_run(row, request)
    return json_response({"job": row}, 201)


@router.patch(
    "/jobs/{job_id}",
    response_model=JobDetail,
    responses=error_responses(400, 404, 409, 503),
    openapi_extra=_body_openapi(JobChange),
    summary="Change some of a job's fields; the new schedule is in force at once",
)
async def edit_job(job_id: str, request: Request) -> Response:
    fields = await _read_object(request, JobChange)
    if fields.get("id", job_id) != job_id:
        raise ApiError(400, ID_MISMATCH)
    control = get_control(request)
    current = await control.store.read(lambda s: s.jobs.get_job(job_id))
    if current is None:
        raise ApiError(404, JOB_NOT_FOUND)
    if current.source is not None:
        raise JobManagedByFileError(job_id, current.source)
    job = replace(_check(fields, current, request), created_at=current.created_at)
    before = await control.store.read(lambda s: s.jobs.get_job_row(job_id))
    row = await control.replace_job(job)
    if row is None:  # deleted between the read and the write
        raise ApiError(404, JOB_NOT_FOUND)
    await audit.record(request, AuditAction.JOB_EDITED, job_id, before=before, after=row)
    row["next_run"] = next_run(row, request)
    return json_response({"job": row})


@router.delete(
    "/jobs/{job_id}",
    response_model=OkBody,
    responses=error_responses(400, 404, 409, 503),
    openapi_extra={
        "parameters": [
            {
                "name": "force",
                "in": "query",
                "required": False,
                "description": "Stop a run in flight first instead of refusing (409).",
                "schema": {"type": "boolean", "default": False},
            }
        ]
    },
    summary="Delete a job and its runs",
)
async def delete_job(job_id: str, request: Request) -> Response:
    force_text = request.query_params.get("force", "false")
    if force_text not in ("true", "false"):
        raise ApiError(400, FORCE_ERROR)
    control = get_control(request)
    current = await control.store.read(lambda s: s.jobs.get_job(job_id))
    if current is not None and current.source is not None:
        raise JobManagedByFileError(job_id, current.source)
    before = await control.store.read(lambda s: s.jobs.get_job_row(job_id))
    # JobInFlightError (409) is mapped in app.py.
    if not await control.delete_job(job_id, force=force_text == "true"):
        raise ApiError(404, JOB_NOT_FOUND)
    await audit.record(request, AuditAction.JOB_REMOVED, job_id, before=before)
    request.app.state.metrics.forget_job(job_id)
    return json_response({"ok": True})


router.add_api_route(
    "/jobs/{job_id}/enable",
    enable_job,
    methods=["PATCH"],
    response_model=OkBody,
    responses=error_responses(404),
    summary="Enable a job (as POST); the schedule is reconciled at once",
    operation_id="enable_job_patch",
)
router.add_api_route(
    "/jobs/{job_id}/disable",
    disable_job,
    methods=["PATCH"],
    response_model=OkBody,
    responses=error_responses(404),
    summary="Disable a job (as POST); it does not fire until enabled again",
    operation_id="disable_job_patch",
)
