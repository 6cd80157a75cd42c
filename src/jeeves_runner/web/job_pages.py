"""The jobs list, a job's page, and what can be done to a job: run, enable, disable, edit,
delete. Reads through the store gateway, acts through RunnerControl, as the API does."""

from __future__ import annotations

import shlex
from dataclasses import replace
from datetime import tzinfo
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse

from jeeves_runner.access_model import AuditAction
from jeeves_runner.api import audit
from jeeves_runner.api.access import DASHBOARD
from jeeves_runner.api.deps import get_control
from jeeves_runner.api.errors import ApiError
from jeeves_runner.api.job_edits import checked_job
from jeeves_runner.api.job_schedule import next_fires
from jeeves_runner.control import JobAlreadyRunningError, JobInFlightError, ShuttingDownError
from jeeves_runner.models import JobState, RunStatus, format_instant
from jeeves_runner.scheduling.fire_schedule import utc_from_timestamp
from jeeves_runner.store.protocols import Store
from jeeves_runner.web import views
from jeeves_runner.web.render import (
    MAX_SEARCH,
    POLL,
    data_token,
    done,
    now_of,
    page_number,
    render,
)
from jeeves_runner.web.session import (
    PageError,
    check_access,
    form_of,
)

PAGE_SIZE = 50
RUNS_PAGE = 50
# `cancelled` comes with issue 11; listed once whether RunStatus has it yet or not.
_RUN_STATUSES = list(dict.fromkeys([*(s.value for s in RunStatus), "cancelled"]))

router = APIRouter(prefix=DASHBOARD, include_in_schema=False, dependencies=[Depends(check_access)])


def _job_filters(request: Request) -> tuple[str | None, str | None, int]:
    search = (request.query_params.get("q") or "").strip() or None
    if search is not None and len(search) > MAX_SEARCH:
        raise PageError(400, f"The search text is longer than {MAX_SEARCH} characters.")
    status = request.query_params.get("status") or None
    states = [s.value for s in JobState]
    if status is not None and status not in states:
        raise PageError(400, f"status must be one of {', '.join(states)} (got {status[:40]!r}).")
    return search, status, page_number(request)


@router.get("")
@router.get("/jobs")
async def jobs_page(request: Request) -> Response:
    search, status, page = _job_filters(request)
    context = await _jobs_context(request, search, status, page)
    return render(request, "jobs.html", **context)


@router.get("/jobs/rows")
async def jobs_rows(request: Request) -> Response:
    """The table body the jobs page polls: 204 while nothing changed."""
    search, status, page = _job_filters(request)
    if request.query_params.get("v") == await data_token(request):
        return Response(status_code=204)
    context = await _jobs_context(request, search, status, page)
    return render(request, "job_rows.html", **context)


async def _jobs_context(
    request: Request, search: str | None, status: str | None, page: int
) -> dict[str, Any]:
    version = await data_token(request)
    now = now_of(request)
    zone: tzinfo = request.app.state.zone
    offset = (page - 1) * PAGE_SIZE

    def read(s: Store) -> tuple[int, list[dict[str, Any]], dict[str, list[tuple[str, int]]]]:
        if status == JobState.LATE:
            # Lateness needs the schedule: the one filter that looks at every candidate.
            candidates: list[dict[str, Any]] = []
            for state in (JobState.OK, JobState.FAILING, JobState.NEW):
                candidates += s.jobs.page_jobs(search, state.value, 0, 10**9)[1]
            late = sorted(
                (r for r in candidates if views.is_late(r, now, zone)), key=lambda r: r["id"]
            )
            total, rows = len(late), late[offset : offset + PAGE_SIZE]
        else:
            total, rows = s.jobs.page_jobs(search, status, offset, PAGE_SIZE)
        return total, rows, s.runs.recent_runs([r["id"] for r in rows], views.SPARK_RUNS)

    control = get_control(request)
    total, rows, recent = await control.store.read(read)
    plan = control.fire_plan()  # the scheduler's own next fires, as GET /jobs shows them
    jobs = []
    for row in rows:
        ts = plan.next.get(row["id"])
        jobs.append(
            {
                **row,
                "state": views.job_state(row, now, zone).value,
                "next_fire": None if ts is None else format_instant(utc_from_timestamp(ts)),
                "spark": views.sparkline(recent.get(row["id"], [])),
            }
        )
    pages_total = max(1, -(-total // PAGE_SIZE))
    query = {k: v for k, v in (("q", search), ("status", status)) if v}
    return {
        "jobs": jobs,
        "total": total,
        "page": page,
        "pages": pages_total,
        "search": search or "",
        "status": status or "",
        "states": [s.value for s in JobState],
        "query": urlencode(query),
        "rows_url": f"{DASHBOARD}/jobs/rows?{urlencode({**query, 'page': page, 'v': version})}",
        "poll": POLL,
        "back": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
    }


@router.post("/jobs/{job_id}/run")
async def run_job(job_id: str, request: Request) -> Response:
    control = get_control(request)
    if await control.store.read(lambda s: s.jobs.get_job_row(job_id)) is None:
        raise PageError(404, f"There is no job '{job_id}'.")
    await audit.record(request, AuditAction.RUN_TRIGGERED, job_id)
    try:
        run_id = await control.start_run(job_id)
    except (JobAlreadyRunningError, ShuttingDownError) as exc:
        raise PageError(409, f"{exc}.") from None
    return await done(
        request, f"Run {run_id} of {job_id} started.", f"{DASHBOARD}/runs/{run_id}", "Open it"
    )


@router.post("/jobs/{job_id}/enable")
async def enable_job(job_id: str, request: Request) -> Response:
    return await _set_enabled(request, job_id, True)


@router.post("/jobs/{job_id}/disable")
async def disable_job(job_id: str, request: Request) -> Response:
    return await _set_enabled(request, job_id, False)


async def _set_enabled(request: Request, job_id: str, enabled: bool) -> Response:
    if not await get_control(request).set_enabled(job_id, enabled):
        raise PageError(404, f"There is no job '{job_id}'.")
    action = AuditAction.JOB_ENABLED if enabled else AuditAction.JOB_DISABLED
    await audit.record(request, action, job_id, after={"enabled": int(enabled)})
    word = "enabled" if enabled else "disabled"
    return await done(request, f"{job_id} {word}.", None, None)


@router.get("/jobs/{job_id}")
async def job_page(job_id: str, request: Request) -> Response:
    return render(request, "job.html", **await _job_context(request, job_id))


@router.get("/jobs/{job_id}/runs")
async def job_runs_rows(job_id: str, request: Request) -> Response:
    if request.query_params.get("v") == await data_token(request):
        return Response(status_code=204)
    return render(request, "job_runs.html", **await _job_context(request, job_id))


async def _job_context(request: Request, job_id: str) -> dict[str, Any]:
    statuses = request.query_params.getlist("status")
    bad = [s for s in statuses if s not in _RUN_STATUSES]
    if bad:
        raise PageError(
            400, f"status must be one of {', '.join(_RUN_STATUSES)} (got {bad[0][:40]!r})."
        )
    before_text = request.query_params.get("before")
    before: int | None = None
    if before_text:
        if not before_text.isascii() or not before_text.isdigit() or len(before_text) > 18:
            raise PageError(400, "before must be a run id (a whole number).")
        before = int(before_text)
    version = await data_token(request)

    def read(s: Store) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        return s.jobs.get_job_row(job_id), s.runs.page_runs(job_id, statuses, before, RUNS_PAGE)

    job, runs = await get_control(request).store.read(read)
    if job is None:
        raise PageError(404, f"There is no job '{job_id}'.")
    zone: tzinfo = request.app.state.zone
    fires = (
        next_fires(job["schedule"], job["timezone"], zone, now_of(request), 10)
        if job["enabled"]
        else []
    )
    chart = views.sparkline(
        [
            (r["status"], r["duration_ms"] or 0)
            for r in reversed(runs)
            if r["status"] not in ("skipped", "missed")
        ],
        height=60,
        bar=6,
    )
    query = urlencode([("status", s) for s in statuses] + ([("before", before)] if before else []))
    return {
        "job": job,
        "fires": fires,
        "runs": runs,
        "chart": chart,
        "statuses": statuses,
        "all_statuses": _RUN_STATUSES,
        "older": runs[-1]["id"] if len(runs) == RUNS_PAGE else None,
        "runs_url": f"{DASHBOARD}/jobs/{job_id}/runs?{query}{'&' if query else ''}v={version}",
        "poll": POLL,
        "back": request.url.path,
    }


@router.get("/jobs/{job_id}/edit")
async def edit_form(job_id: str, request: Request) -> Response:
    job = await get_control(request).store.read(lambda s: s.jobs.get_job_row(job_id))
    if job is None:
        raise PageError(404, f"There is no job '{job_id}'.")
    return render(request, "edit.html", job=job, form=_form_values(job), error=None)


@router.post("/jobs/{job_id}/edit")
async def edit_job(job_id: str, request: Request) -> Response:
    control = get_control(request)
    current = await control.store.read(lambda s: s.jobs.get_job(job_id))
    before = await control.store.read(lambda s: s.jobs.get_job_row(job_id))
    if current is None or before is None:
        raise PageError(404, f"There is no job '{job_id}'.")
    if current.source is not None:
        raise PageError(409, f"{job_id} is defined by {current.source}: edit it there.")
    form = await form_of(request)
    try:
        fields = _fields_from_form(form)
        job = replace(checked_job(fields, current, request), created_at=current.created_at)
    except (ApiError, ValueError) as exc:
        message = exc.message if isinstance(exc, ApiError) else str(exc)
        typed = {**_form_values(before), **form}
        return render(request, "edit.html", 400, job=before, form=typed, error=message)
    row = await control.replace_job(job)
    if row is None:
        raise PageError(404, f"There is no job '{job_id}'.")
    await audit.record(request, AuditAction.JOB_EDITED, job_id, before=before, after=row)
    return RedirectResponse(f"{DASHBOARD}/jobs/{job_id}", status_code=303)


_TEXT_FIELDS = ("name", "schedule", "timezone", "description", "on_failure", "on_success")


def _form_values(job: dict[str, Any]) -> dict[str, str]:
    """A stored job as the edit form's fields."""
    values = {name: job.get(name) or "" for name in _TEXT_FIELDS}
    values["script"] = job.get("script") or ""
    values["command"] = shlex.join(job["command"]) if job.get("command") else ""
    values["args"] = shlex.join(job.get("args") or [])
    values["timeout_ms"] = str(job["timeout_ms"]) if job.get("timeout_ms") else ""
    values["overlap_policy"] = job.get("overlap_policy") or "skip"
    values["tags"] = ", ".join(job.get("tags") or [])
    return values


def _fields_from_form(form: dict[str, str]) -> dict[str, Any]:
    """The edit form as a PATCH body: blank optional fields clear, and a command given
    replaces the script (shell words, split as a shell would, never run by one)."""
    fields: dict[str, Any] = {}
    for name in _TEXT_FIELDS:
        value = form.get(name, "").strip()
        fields[name] = value or None
    command = form.get("command", "").strip()
    if command:
        fields["command"] = shlex.split(command)
    else:
        fields["command"] = None
        fields["script"] = form.get("script", "").strip() or None
        fields["args"] = shlex.split(form.get("args", ""))
    timeout = form.get("timeout_ms", "").strip()
    if timeout and not (timeout.isascii() and timeout.isdigit()):
        raise ValueError("timeout_ms: must be a whole number of milliseconds")
    fields["timeout_ms"] = int(timeout) if timeout else None
    fields["overlap_policy"] = form.get("overlap_policy", "skip")
    fields["tags"] = [t.strip() for t in form.get("tags", "").split(",") if t.strip()]
    return fields


@router.get("/jobs/{job_id}/delete")
async def delete_confirm(job_id: str, request: Request) -> Response:
    job = await get_control(request).store.read(lambda s: s.jobs.get_job_row(job_id))
    if job is None:
        raise PageError(404, f"There is no job '{job_id}'.")
    return render(request, "delete.html", job=job)


@router.post("/jobs/{job_id}/delete")
async def delete_job(job_id: str, request: Request) -> Response:
    control = get_control(request)
    before = await control.store.read(lambda s: s.jobs.get_job_row(job_id))
    if before is None:
        raise PageError(404, f"There is no job '{job_id}'.")
    if before.get("source"):
        raise PageError(409, f"{job_id} is defined by {before['source']}: delete it there.")
    force = (await form_of(request)).get("force") == "1"
    try:
        deleted = await control.delete_job(job_id, force=force)
    except JobInFlightError:
        raise PageError(
            409, f"{job_id} has a run in flight: stop it first, or delete with force."
        ) from None
    if deleted:
        await audit.record(request, AuditAction.JOB_REMOVED, job_id, before=before)
        request.app.state.metrics.forget_job(job_id)
    return RedirectResponse(DASHBOARD, status_code=303)
