"""The dashboard's pages. Each handler reads through the store gateway (never on the loop),
acts through RunnerControl (as the API does) and renders a template. Bad query parameters
are a message page with a 400, never a 500."""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import replace
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.staticfiles import StaticFiles

from jeeves_runner import __version__
from jeeves_runner.access_model import AuditAction, Scope
from jeeves_runner.api import audit
from jeeves_runner.api.access import DASHBOARD, SESSION_COOKIE
from jeeves_runner.api.deps import get_control
from jeeves_runner.api.errors import ApiError
from jeeves_runner.api.job_edits import checked_job
from jeeves_runner.api.job_schedule import next_fires
from jeeves_runner.auth import TokenGuard
from jeeves_runner.control import JobAlreadyRunningError, JobInFlightError, ShuttingDownError
from jeeves_runner.models import JobState, RunStatus, format_instant, parse_instant
from jeeves_runner.store.errors import StoreError
from jeeves_runner.store.protocols import Store
from jeeves_runner.web import views
from jeeves_runner.web.session import (
    CSRF_FIELD,
    LoginRequired,
    PageError,
    actor,
    check_access,
    clear_cookie_header,
    csrf_token,
    form_of,
    login_url,
    new_csrf_key,
    session_cookie_header,
    token_scope,
)

HERE = Path(__file__).resolve().parent
PAGE_SIZE = 50
RUNS_PAGE = 50
MAX_PAGE = 100_000
MAX_SEARCH = 200
# The lists poll this often; an unchanged database answers 204 (nothing to swap).
POLL = "every 1s"
# Pages that show times ("next fire", "late") refresh at least this often without a change.
TIME_BUCKET_S = 30
_RUN_STATUSES = [s.value for s in RunStatus] + ["cancelled"]

pages = APIRouter(prefix=DASHBOARD, include_in_schema=False, dependencies=[Depends(check_access)])
public = APIRouter(include_in_schema=False)

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_templates.filters["duration"] = views.duration


def install(app: FastAPI, guard: TokenGuard) -> None:
    """Pages, static files and the handlers that turn page errors into pages."""
    app.state.csrf_key = new_csrf_key()
    app.state.guard = guard
    app.include_router(public)
    app.include_router(pages)
    app.mount(f"{DASHBOARD}/static", StaticFiles(directory=HERE / "static"), name="ui-static")
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(PageError, _page_error)


# --- rendering ---------------------------------------------------------------------------


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    scope = token_scope(request)
    zone: tzinfo = request.app.state.zone
    body = _templates.get_template(template).render(
        request=request,
        ui=DASHBOARD,
        version=__version__,
        csrf=csrf_token(request),
        csrf_field=CSRF_FIELD,
        actor=actor(request),
        logged_in=request.cookies.get(SESSION_COOKIE) is not None,
        can_trigger=scope is not None and scope.allows(Scope.TRIGGER),
        can_admin=scope is not None and scope.allows(Scope.ADMIN),
        zone_name=str(zone),
        local=lambda instant: views.local_time(instant, zone),
        offset=lambda instant: views.zone_offset_minutes(instant, zone),
        **context,
    )
    response = HTMLResponse(body, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )
    return response


async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    if _is_htmx(request):
        # A poll whose session ended (a token revoked): the whole page goes to the login,
        # rather than a login form swapped into a table.
        return Response(status_code=200, headers={"HX-Redirect": login_url(DASHBOARD)})
    return RedirectResponse(login_url(exc.next_path), status_code=303)


async def _page_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageError)
    if _is_htmx(request):
        # htmx swaps only 2xx answers: the message goes into the flash area as a 200.
        return render(request, "flash.html", ok=False, message=exc.message, link=None)
    return render(request, "message.html", exc.status_code, title="Sorry", message=exc.message)


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def _now(request: Request) -> datetime:
    now: datetime = request.app.state.clock.now()
    return now


# --- query parameters --------------------------------------------------------------------


def _page_number(request: Request, name: str = "page") -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return 1
    if not text.isascii() or not text.isdigit() or not 1 <= int(text[:7]) <= MAX_PAGE:
        raise PageError(400, f"{name} must be a whole number from 1 to {MAX_PAGE}.")
    return int(text)


def _job_filters(request: Request) -> tuple[str | None, str | None, int]:
    search = (request.query_params.get("q") or "").strip() or None
    if search is not None and len(search) > MAX_SEARCH:
        raise PageError(400, f"The search text is longer than {MAX_SEARCH} characters.")
    status = request.query_params.get("status") or None
    states = [s.value for s in JobState]
    if status is not None and status not in states:
        raise PageError(400, f"status must be one of {', '.join(states)} (got {status[:40]!r}).")
    return search, status, _page_number(request)


async def _version(request: Request) -> str:
    """The data version with a time bucket, as a short token the polling lists send back."""
    control = get_control(request)
    version = await control.store.probe(control.data_version)
    bucket = int(_now(request).timestamp()) // TIME_BUCKET_S
    return hashlib.sha1(repr((version, bucket)).encode()).hexdigest()[:12]


# --- login -------------------------------------------------------------------------------


@public.get("/")
async def root() -> Response:
    return RedirectResponse(DASHBOARD, status_code=303)


@public.get(f"{DASHBOARD}/login")
async def login_page(request: Request) -> Response:
    return render(
        request, "login.html", next=_safe_next(request.query_params.get("next")), error=None
    )


@public.post(f"{DASHBOARD}/login")
async def login(request: Request) -> Response:
    form = await form_of(request)
    secret = form.get("token", "").strip()
    next_path = _safe_next(form.get("next"))
    guard: TokenGuard = request.app.state.guard
    await guard.refresh()
    verdict = guard.match(secret) if secret else None
    if verdict is None or verdict.name is None:
        return render(request, "login.html", 401, next=next_path, error="That token is not valid.")
    response = RedirectResponse(next_path, status_code=303)
    response.headers["Set-Cookie"] = session_cookie_header(
        secret, secure=request.url.scheme == "https"
    )
    return response


@public.post(f"{DASHBOARD}/logout")
async def logout() -> Response:
    response = RedirectResponse(f"{DASHBOARD}/login", status_code=303)
    response.headers["Set-Cookie"] = clear_cookie_header()
    return response


def _safe_next(text: str | None) -> str:
    """Only a path of this dashboard: never an open redirect to another site."""
    if text and text.startswith(DASHBOARD) and "//" not in text and "\\" not in text:
        return text
    return DASHBOARD


# --- jobs --------------------------------------------------------------------------------


@pages.get("")
@pages.get("/jobs")
async def jobs_page(request: Request) -> Response:
    search, status, page = _job_filters(request)
    context = await _jobs_context(request, search, status, page)
    return render(request, "jobs.html", **context)


@pages.get("/jobs/rows")
async def jobs_rows(request: Request) -> Response:
    """The table body the jobs page polls: 204 while nothing changed."""
    search, status, page = _job_filters(request)
    if request.query_params.get("v") == await _version(request):
        return Response(status_code=204)
    context = await _jobs_context(request, search, status, page)
    return render(request, "job_rows.html", **context)


async def _jobs_context(
    request: Request, search: str | None, status: str | None, page: int
) -> dict[str, Any]:
    version = await _version(request)
    now = _now(request)
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

    total, rows, recent = await get_control(request).store.read(read)
    jobs = []
    for row in rows:
        fires = next_fires(row["schedule"], row["timezone"], zone, now, 1) if row["enabled"] else []
        jobs.append(
            {
                **row,
                "state": views.job_state(row, now, zone).value,
                "next_fire": fires[0] if fires else None,
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


@pages.post("/jobs/{job_id}/run")
async def run_job(job_id: str, request: Request) -> Response:
    control = get_control(request)
    if await control.store.read(lambda s: s.jobs.get_job_row(job_id)) is None:
        raise PageError(404, f"There is no job '{job_id}'.")
    await audit.record(request, AuditAction.RUN_TRIGGERED, job_id)
    try:
        run_id = await control.start_run(job_id)
    except (JobAlreadyRunningError, ShuttingDownError) as exc:
        raise PageError(409, f"{exc}.") from None
    return await _done(
        request, f"Run {run_id} of {job_id} started.", f"{DASHBOARD}/runs/{run_id}", "Open it"
    )


@pages.post("/jobs/{job_id}/enable")
async def enable_job(job_id: str, request: Request) -> Response:
    return await _set_enabled(request, job_id, True)


@pages.post("/jobs/{job_id}/disable")
async def disable_job(job_id: str, request: Request) -> Response:
    return await _set_enabled(request, job_id, False)


async def _set_enabled(request: Request, job_id: str, enabled: bool) -> Response:
    if not await get_control(request).set_enabled(job_id, enabled):
        raise PageError(404, f"There is no job '{job_id}'.")
    action = AuditAction.JOB_ENABLED if enabled else AuditAction.JOB_DISABLED
    await audit.record(request, action, job_id, after={"enabled": int(enabled)})
    word = "enabled" if enabled else "disabled"
    return await _done(request, f"{job_id} {word}.", None, None)


async def _done(
    request: Request, message: str, link: str | None, link_text: str | None
) -> Response:
    """After an action: a flash message for htmx, else back to the page the form was on."""
    if _is_htmx(request):
        return render(
            request, "flash.html", ok=True, message=message, link=link, link_text=link_text
        )
    back = (await form_of(request)).get("back")
    return RedirectResponse(link or _safe_next(back), status_code=303)


@pages.get("/jobs/{job_id}")
async def job_page(job_id: str, request: Request) -> Response:
    return render(request, "job.html", **await _job_context(request, job_id))


@pages.get("/jobs/{job_id}/runs")
async def job_runs_rows(job_id: str, request: Request) -> Response:
    if request.query_params.get("v") == await _version(request):
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
    version = await _version(request)

    def read(s: Store) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        return s.jobs.get_job_row(job_id), s.runs.page_runs(job_id, statuses, before, RUNS_PAGE)

    job, runs = await get_control(request).store.read(read)
    if job is None:
        raise PageError(404, f"There is no job '{job_id}'.")
    zone: tzinfo = request.app.state.zone
    fires = (
        next_fires(job["schedule"], job["timezone"], zone, _now(request), 10)
        if job["enabled"]
        else []
    )
    chart = views.sparkline(
        [(r["status"], r["duration_ms"] or 0) for r in reversed(runs) if r["status"] != "skipped"],
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


@pages.get("/jobs/{job_id}/edit")
async def edit_form(job_id: str, request: Request) -> Response:
    job = await get_control(request).store.read(lambda s: s.jobs.get_job_row(job_id))
    if job is None:
        raise PageError(404, f"There is no job '{job_id}'.")
    return render(request, "edit.html", job=job, form=_form_values(job), error=None)


@pages.post("/jobs/{job_id}/edit")
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


@pages.get("/jobs/{job_id}/delete")
async def delete_confirm(job_id: str, request: Request) -> Response:
    job = await get_control(request).store.read(lambda s: s.jobs.get_job_row(job_id))
    if job is None:
        raise PageError(404, f"There is no job '{job_id}'.")
    return render(request, "delete.html", job=job)


@pages.post("/jobs/{job_id}/delete")
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


# --- runs --------------------------------------------------------------------------------


def _has_route(request: Request, path: str) -> bool:
    return any(getattr(r, "path", None) == path for r in request.app.routes)


@pages.get("/runs/{run_id}")
async def run_page(run_id: str, request: Request) -> Response:
    return render(request, "run.html", **await _run_context(request, run_id))


@pages.get("/runs/{run_id}/status")
async def run_status(run_id: str, request: Request) -> Response:
    context = await _run_context(request, run_id)
    if request.query_params.get("v") == context["state_token"]:
        return Response(status_code=204)
    return render(request, "run_status.html", **context)


async def _run_context(request: Request, run_id_text: str) -> dict[str, Any]:
    if not run_id_text.isascii() or not run_id_text.isdigit() or len(run_id_text) > 18:
        raise PageError(400, "A run id is a whole number.")
    run_id = int(run_id_text)
    run = await get_control(request).store.read(lambda s: s.runs.get_run(run_id))
    if run is None:
        raise PageError(404, f"There is no run {run_id}.")
    in_flight = run["status"] in (RunStatus.PENDING.value, RunStatus.RUNNING.value)
    state_token = hashlib.sha1(repr(sorted(run.items())).encode()).hexdigest()[:12]
    return {
        "run": run,
        "in_flight": in_flight,
        "state_token": state_token,
        "status_url": f"{DASHBOARD}/runs/{run_id}/status?v={state_token}",
        "log_url": f"/runs/{run_id}/log" if _has_route(request, "/runs/{run_id}/log") else None,
        "can_cancel": _has_route(request, "/runs/{run_id}/cancel"),
        "poll": POLL,
    }


@pages.post("/runs/{run_id}/cancel")
async def cancel_run(run_id: str, request: Request) -> Response:
    if not run_id.isascii() or not run_id.isdigit() or len(run_id) > 18:
        raise PageError(400, "A run id is a whole number.")
    # RunnerControl.cancel_run comes with run logs (issue 11): until then the page shows no
    # cancel button, and a hand-made POST is told so.
    cancel = getattr(get_control(request), "cancel_run", None)
    if cancel is None:
        raise PageError(501, "Cancelling runs arrives with run logs (issue 11).")
    reason = f"Cancelled from the dashboard by {actor(request)}"
    if not await cancel(int(run_id), reason):
        raise PageError(409, f"Run {run_id} is not in flight in this runner.")
    await audit.record(request, AuditAction.RUN_CANCELLED, run_id)
    return await _done(request, f"Run {run_id}: cancel sent.", None, None)


# --- queues, state, audit ----------------------------------------------------------------


@pages.get("/queues")
async def queues_page(request: Request) -> Response:
    now = _now(request)

    def read(s: Store) -> list[dict[str, Any]]:
        oldest = {q: created for q, _, created in s.queues.pending_summary()}
        queues = s.queues.list_queues_with_counts()
        for queue in queues:
            queue["oldest"] = oldest.get(queue["id"])
            queue["failed_items"] = (
                s.queues.failed_items(queue["id"], 10) if queue["failed"] else []
            )
        return queues

    queues = await get_control(request).store.read(read)
    for queue in queues:
        queue["oldest_age"] = (
            views.duration(int((now - parse_instant(queue["oldest"])).total_seconds() * 1000))
            if queue["oldest"]
            else "–"
        )
    return render(request, "queues.html", queues=queues)


@pages.get("/state")
async def state_page(request: Request) -> Response:
    namespace = request.query_params.get("ns") or None
    if namespace is not None and len(namespace) > MAX_SEARCH:
        raise PageError(400, f"ns is longer than {MAX_SEARCH} characters.")
    now = format_instant(_now(request))

    def read(s: Store) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        keys = s.state.list_keys(namespace, now, 500) if namespace else []
        return s.state.namespaces(now), keys

    namespaces, keys = await get_control(request).store.read(read)
    return render(request, "state.html", namespaces=namespaces, namespace=namespace, keys=keys)


@pages.get("/audit")
async def audit_page(request: Request) -> Response:
    try:
        entries = await get_control(request).store.read(lambda s: s.audit.list_entries(200))
    except StoreError as exc:
        raise PageError(503, str(exc)) from None
    return render(request, "audit.html", entries=entries)
