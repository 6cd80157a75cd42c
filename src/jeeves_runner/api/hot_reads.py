"""The two reads a dashboard or a monitor polls all the time, GET /jobs and
GET /jobs/:id/runs, answered without FastAPI's routing and parameter machinery.

The same route functions run, with the same Request, and their errors get the same
answers as through the router (ApiError, a store that cannot be read), so the bytes on the
wire are those of the routed path; what is skipped is matching the path against every route
and solving (empty) dependencies. The app (`RunnerApi.fast_path`) sends these two GETs here
past Starlette's and FastAPI's middleware too, behind the same last-resort handler and
access control as every other route; HEAD takes the routed way.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from jeeves_runner.api import jobs
from jeeves_runner.api.errors import ApiError
from jeeves_runner.store.errors import StoreError


class HotReads:
    def __init__(self, app: ASGIApp, answer: Callable[[int, str], Response]) -> None:
        self.app = app
        self.answer = answer  # the app's error body: {"error": "<sentence>"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        job_id = _runs_of(path)
        if path != "/jobs" and job_id is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            if job_id is None:
                response = await jobs.list_jobs(request)
            else:
                response = await jobs.list_runs(job_id, request)
        except ApiError as exc:
            response = self.answer(exc.status_code, exc.message)
        except StoreError as exc:  # as app.py's handler answers it outside the dashboard
            response = self.answer(503, str(exc))
        await response(scope, receive, send)


def is_hot_read(path: str) -> bool:
    """A path HotReads answers (for GET)."""
    return path == "/jobs" or _runs_of(path) is not None


def _runs_of(path: str) -> str | None:
    """The job id of `/jobs/<id>/runs` (one non-empty segment, as the route's `{job_id}`)."""
    if not (path.startswith("/jobs/") and path.endswith("/runs")):
        return None
    job_id = path[6:-5]
    return job_id if job_id and "/" not in job_id else None
