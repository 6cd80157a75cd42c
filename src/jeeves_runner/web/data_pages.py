"""A run's page (status, and its log once runs can be followed), and the queues, state and
audit pages."""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from jeeves_runner.access_model import AuditAction
from jeeves_runner.api import audit
from jeeves_runner.api.access import DASHBOARD
from jeeves_runner.api.deps import get_control
from jeeves_runner.models import RunStatus, format_instant, parse_instant
from jeeves_runner.store.errors import StoreError
from jeeves_runner.store.protocols import Store
from jeeves_runner.web import views
from jeeves_runner.web.render import MAX_SEARCH, POLL, done, now_of, render
from jeeves_runner.web.session import (
    PageError,
    actor,
    check_access,
)

# The tries of one first run the run page links to (a retry policy allows far fewer).
MAX_TRIES = 50

router = APIRouter(prefix=DASHBOARD, include_in_schema=False, dependencies=[Depends(check_access)])


def _has_route(request: Request, path: str) -> bool:
    # The API's own routes (create_app lists them): FastAPI keeps included routers whole in
    # app.routes, where their paths do not show.
    routes = getattr(request.app.state, "api_routes", [])
    return any(getattr(r, "path", None) == path for r in routes)


@router.get("/runs/{run_id}")
async def run_page(run_id: str, request: Request) -> Response:
    return render(request, "run.html", **await _run_context(request, run_id))


@router.get("/runs/{run_id}/status")
async def run_status(run_id: str, request: Request) -> Response:
    context = await _run_context(request, run_id)
    if request.query_params.get("v") == context["state_token"]:
        return Response(status_code=204)
    return render(request, "run_status.html", **context)


async def _run_context(request: Request, run_id_text: str) -> dict[str, Any]:
    if not run_id_text.isascii() or not run_id_text.isdigit() or len(run_id_text) > 18:
        raise PageError(400, "A run id is a whole number.")
    run_id = int(run_id_text)

    def read(s: Store) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        run = s.runs.get_run(run_id)
        if run is None:
            return None, []
        first = run.get("retry_of") or run_id
        return run, s.runs.tries_of(run["job_id"], first, MAX_TRIES)

    run, tries = await get_control(request).store.read(read)
    if run is None:
        raise PageError(404, f"There is no run {run_id}.")
    in_flight = run["status"] in (RunStatus.PENDING.value, RunStatus.RUNNING.value)
    state = (sorted(run.items()), tries)
    state_token = hashlib.sha1(repr(state).encode()).hexdigest()[:12]
    return {
        "run": run,
        # The first try and its retries, shown when there is more than this run.
        "tries": tries if len(tries) > 1 or run.get("retry_of") else [],
        "in_flight": in_flight,
        "state_token": state_token,
        "status_url": f"{DASHBOARD}/runs/{run_id}/status?v={state_token}",
        "log_url": f"/runs/{run_id}/log" if _has_route(request, "/runs/{run_id}/log") else None,
        "can_cancel": _has_route(request, "/runs/{run_id}/cancel"),
        "poll": POLL,
    }


@router.post("/runs/{run_id}/cancel")
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
    return await done(request, f"Run {run_id}: cancel sent.", None, None)


@router.get("/queues")
async def queues_page(request: Request) -> Response:
    now = now_of(request)

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


@router.get("/state")
async def state_page(request: Request) -> Response:
    namespace = request.query_params.get("ns") or None
    if namespace is not None and len(namespace) > MAX_SEARCH:
        raise PageError(400, f"ns is longer than {MAX_SEARCH} characters.")
    now = format_instant(now_of(request))

    def read(s: Store) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        keys = s.state.list_keys(namespace, now, 500) if namespace else []
        return s.state.namespaces(now), keys

    namespaces, keys = await get_control(request).store.read(read)
    return render(request, "state.html", namespaces=namespaces, namespace=namespace, keys=keys)


@router.get("/audit")
async def audit_page(request: Request) -> Response:
    try:
        entries = await get_control(request).store.read(lambda s: s.audit.list_entries(200))
    except StoreError as exc:
        raise PageError(503, str(exc)) from None
    return render(request, "audit.html", entries=entries)


@router.get("/cluster")
async def cluster_page(request: Request) -> Response:
    return render(request, "cluster.html", **await _cluster_context(request))


@router.get("/cluster/rows")
async def cluster_rows(request: Request) -> Response:
    """The nodes table the cluster page polls: 204 while nothing changed."""
    context = await _cluster_context(request)
    if request.query_params.get("v") == context["state_token"]:
        return Response(status_code=204)
    return render(request, "cluster_rows.html", **context)


async def _cluster_context(request: Request) -> dict[str, Any]:
    """GET /cluster's view (the same nodes, states and leader), with each heartbeat's age."""
    view = await get_control(request).cluster_view()
    now = now_of(request)
    nodes = view["nodes"]
    for node in nodes:
        age_ms = int((now - parse_instant(node["last_heartbeat"])).total_seconds() * 1000)
        # Whole seconds: the page is swapped at each heartbeat, not each millisecond.
        node["heartbeat_age"] = (
            "under 1 s" if age_ms < 1000 else views.duration(age_ms // 1000 * 1000)
        )
    state_token = hashlib.sha1(
        repr((view["node_id"], [sorted(n.items()) for n in nodes])).encode()
    ).hexdigest()[:12]
    return {
        "enabled": view["enabled"],
        "node_id": view["node_id"],
        "nodes": nodes,
        "up": sum(1 for n in nodes if n["state"] == "up"),
        "leader": next((n["id"] for n in nodes if n["leader"] and n["state"] == "up"), None),
        "state_token": state_token,
        "rows_url": f"{DASHBOARD}/cluster/rows?v={state_token}",
        "poll": POLL,
    }
