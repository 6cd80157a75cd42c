"""GET /metrics: the Prometheus text format."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response

from jeeves_runner.api.deps import get_control
from jeeves_runner.metrics import CONTENT_TYPE, RunnerMetrics

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    summary="Prometheus metrics",
)
async def metrics(request: Request) -> Response:
    metrics: RunnerMetrics = request.app.state.metrics
    queues = await get_control(request).store.read(lambda s: s.queues.pending_summary())
    lock: asyncio.Lock = request.app.state.metrics_lock
    async with lock:  # one scrape formats at a time: they share the per-job text cache
        snapshot = metrics.snapshot(queues)
        # Formatting 10,000 jobs' lines can take tens of ms: in a thread, so timers and
        # other requests keep their turn.
        body = await asyncio.to_thread(metrics.render, snapshot)
    return Response(content=body, media_type=CONTENT_TYPE)
