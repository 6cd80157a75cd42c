"""The HTTP app: routers, and the one place that maps errors to status codes.

Every error leaves as `{"error": "<sentence>"}`, FastAPI's and Starlette's own included, and
/openapi.json says so: validation failures are documented as 400 with that body, not as
FastAPI's default 422 shape.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import tzinfo
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jeeves_runner import __version__
from jeeves_runner.api import (
    audit,
    cluster,
    health,
    job_edits,
    job_schedule,
    jobs,
    queues,
    runs,
    state,
)
from jeeves_runner.api import metrics as metrics_api
from jeeves_runner.api.access import AccessControl, is_dashboard_path
from jeeves_runner.api.errors import ApiError
from jeeves_runner.api.hot_reads import HotReads, is_hot_read
from jeeves_runner.api.job_schedule import NextRunList
from jeeves_runner.api.params import ErrorBody, json_response
from jeeves_runner.auth import TokenGuard
from jeeves_runner.clock import Clock, SystemClock
from jeeves_runner.control import (
    JobAlreadyRunningError,
    JobInFlightError,
    JobManagedByFileError,
    JobNotFoundError,
    RunnerControl,
    ShuttingDownError,
)
from jeeves_runner.metrics import RunnerMetrics
from jeeves_runner.models import JobExistsError
from jeeves_runner.scheduling.cron import resolve_zone
from jeeves_runner.store.errors import StoreError
from jeeves_runner.store.jobs_list import JobsListView
from jeeves_runner.store.runs_list import RunsListView
from jeeves_runner.web import render as web_render
from jeeves_runner.web import routes as web_routes
from jeeves_runner.web.session import PageError

log = structlog.get_logger("jeeves_runner.api")

INTERNAL_ERROR = "Internal error"
INVALID_JSON = "Request body is not valid JSON"

# What the runner raises, and the status each one means. Messages are the errors' own.
_DOMAIN_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (JobNotFoundError, 404),
    (JobAlreadyRunningError, 409),
    (ShuttingDownError, 503),
    (JobExistsError, 409),
    (JobInFlightError, 409),
    (JobManagedByFileError, 409),
    # The database is locked by another process, full or failing: try again later.
    (StoreError, 503),
)


class RunnerApi(FastAPI):
    # GET /jobs and GET /jobs/:id/runs, the reads a dashboard or a monitor polls all the
    # time, go straight to their own short stack (last resort, access control, the two
    # routes: see create_app) instead of through FastAPI's and Starlette's middleware,
    # the user middleware and the router (about a third of a cached read's time).
    fast_path: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.fast_path
        if (
            fast is not None
            and scope["type"] == "http"
            and scope["method"] == "GET"
            and is_hot_read(scope["path"])
        ):
            scope["app"] = self  # as Starlette sets it: the routes read app.state
            await fast(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        first = self.openapi_schema is None
        schema = super().openapi()  # built once, then cached by FastAPI
        if first:
            _document_errors(schema)
        return schema


def create_app(
    control: RunnerControl,
    *,
    clock: Clock | None = None,
    zone: tzinfo | None = None,
    guard: TokenGuard | None = None,
    metrics: RunnerMetrics | None = None,
    webhook_names: Callable[[], list[str]] | None = None,
) -> FastAPI:
    """`zone`: the runner's zone, for jobs without their own (None: this machine's).
    `guard`: who may do what (without one: open, as on loopback with no token; the Origin
    check applies either way). `metrics`: what /metrics shows (without: a registry of its
    own, so the route still answers). `webhook_names`: the configured webhooks, read at each
    job write, that a job's on_failure/on_success may name as `webhook:NAME` (None: none)."""
    app = RunnerApi(
        title="jeeves-runner",
        version=__version__,
        description="Job management and monitoring for a jeeves-runner instance.",
        openapi_url="/openapi.json",
        # The interactive pages load scripts from a CDN; an operator's box may have no
        # internet, and the contract is /openapi.json.
        docs_url=None,
        redoc_url=None,
        # A path is either a route or unknown (404); no redirects to a slash-less twin.
        redirect_slashes=False,
    )
    app.state.control = control
    app.state.clock = clock if clock is not None else SystemClock()
    app.state.zone = zone if zone is not None else resolve_zone(None)
    app.state.body_cache = jobs.BodyCache()
    app.state.jobs_list = JobsListView()
    app.state.runs_list = RunsListView()
    app.state.jobs_list_next = NextRunList()
    app.state.metrics = metrics if metrics is not None else RunnerMetrics(app.state.clock)
    app.state.metrics_lock = asyncio.Lock()
    app.state.webhook_names = webhook_names if webhook_names is not None else list
    routers = (
        jobs.router,
        runs.router,
        job_edits.router,
        job_schedule.router,
        health.router,
        cluster.router,
        queues.router,
        state.router,
        audit.router,
        metrics_api.router,
    )
    for router in routers:
        app.include_router(router)
    app.state.api_routes = [
        r for router in routers for r in router.routes if isinstance(r, APIRoute)
    ]
    guard = guard if guard is not None else TokenGuard(None, loopback=True)
    # The dashboard: its pages, static files and page-shaped errors (web/).
    web_routes.install(app, guard)
    app.add_exception_handler(ApiError, _api_error)
    for error_type, status_code in _DOMAIN_STATUS:
        app.add_exception_handler(error_type, _answer_with(status_code))
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(HeadAsGet)
    app.add_middleware(AccessControl, guard=guard)
    app.add_middleware(LastResort)  # added last: the outermost
    # The same checks in the same order for the two hot reads (HEAD of them goes the long
    # way, through HeadAsGet and the router: the same bytes, tested).
    app.fast_path = LastResort(AccessControl(HotReads(app.router, error_response), guard))
    return app


def error_response(
    status_code: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    response = json_response({"error": message}, status_code)
    if headers:
        response.headers.update(headers)
    return response


# Handlers are async: Starlette runs a plain function handler in its thread pool.


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status_code, exc.message)


def _answer_with(status_code: int) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handler(request: Request, exc: Exception) -> Response:
        if is_dashboard_path(request.url.path):
            # The dashboard's pages answer with a page (a busy database, a job gone).
            return await web_render.page_error(
                request, PageError(status_code, str(exc).rstrip(".") + ".")
            )
        return error_response(status_code, str(exc))

    return handler


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = exc.status_code
    detail = exc.detail if isinstance(exc.detail, str) else ""
    if code == 404 and detail in ("", HTTPStatus.NOT_FOUND.phrase):
        message = f"No route for {request.method} {request.url.path}"
    elif code == 405 and detail in ("", HTTPStatus.METHOD_NOT_ALLOWED.phrase):
        message = f"Method {request.method} is not allowed on {request.url.path}"
    elif detail:
        message = detail
    else:
        message = _phrase(code)
    # Keep Starlette's headers: a 405 carries `Allow`.
    headers = dict(exc.headers) if exc.headers else {}
    if code == 405:
        # Starlette names only the first route that matched the path; a path served by
        # several routes (GET and PATCH /jobs/:id) allows the methods of all of them.
        headers["allow"] = ", ".join(_allowed_methods(request))
    return error_response(code, message, headers or None)


def _allowed_methods(request: Request) -> list[str]:
    allowed: list[str] = []
    routes: list[APIRoute] = request.app.state.api_routes
    for route in routes:
        if route.path_regex.match(request.url.path):
            methods = route.methods or set()
            allowed.extend(m for m in _METHOD_ORDER if m in methods and m not in allowed)
    return allowed


_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(400, describe_validation_errors(exc.errors()))


class LastResort:
    """Any exception no handler took: logged once, answered 500 with the error body.

    A middleware rather than an `Exception` handler: Starlette re-raises after calling such a
    handler, so the server would log every failure a second time, outside structlog.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error in request", method=scope["method"], path=scope["path"])
            if started:
                raise  # too late for a body of ours; the server ends the connection
            await error_response(500, INTERNAL_ERROR)(scope, receive, send)


class HeadAsGet:
    """HEAD answers wherever GET does: the GET route runs, its headers (Content-Length
    included) go out, its body does not."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def bodiless_send(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, bodiless_send)


def describe_validation_errors(errors: Any) -> str:
    """One sentence for the first problem FastAPI found, naming where it is."""
    first = next(iter(errors), None)
    if not isinstance(first, dict):
        return "The request is not valid"
    if first.get("type") == "json_invalid":
        return INVALID_JSON
    loc = [str(part) for part in first.get("loc", ())]
    msg = str(first.get("msg", "is not valid"))
    if not loc:
        return f"Invalid request: {msg}"
    where, names = loc[0], ".".join(loc[1:])
    if where == "body":
        return f"body field '{names}': {msg}" if names else f"request body: {msg}"
    return f"{where} parameter '{names}': {msg}"


def _phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return f"HTTP {code}"


def _document_errors(schema: dict[str, Any]) -> None:
    """Say in the schema what the handlers above do: a request FastAPI rejects is a 400 with
    the error body, not a 422 with FastAPI's detail list."""
    ref = "#/components/schemas/ErrorBody"
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("ErrorBody", ErrorBody.model_json_schema())
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.get("responses", {})
            if responses.pop("422", None) is not None:
                responses.setdefault(
                    "400",
                    {
                        "description": "Invalid request: the message names the problem",
                        "content": {"application/json": {"schema": {"$ref": ref}}},
                    },
                )
    # FastAPI's validation schemas stay only if something still refers to them.
    for name in ("HTTPValidationError", "ValidationError"):
        others = {k: v for k, v in components.items() if k != name}
        if f'"#/components/schemas/{name}"' not in json.dumps([schema["paths"], others]):
            components.pop(name, None)
    if not components:
        del schema["components"]
