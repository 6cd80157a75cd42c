"""GET /metrics: the Prometheus text format."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response

from jeeves_runner.api.deps import get_control
from jeeves_runner.metrics import CONTENT_TYPE, RunnerMetrics, render

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    summary="Prometheus metrics",
)
async def metrics(request: Request) -> Response:
    registry: RunnerMetrics = request.app.state.metrics
    queues = await get_control(request).store.read(lambda s: s.queues.pending_summary())
    snapshot = registry.snapshot(queues)
    # Formatting 10,000 jobs' series takes tens of ms: in a thread, so timers keep their turn.
    body = await asyncio.to_thread(render, snapshot)
    return Response(content=body, media_type=CONTENT_TYPE)
