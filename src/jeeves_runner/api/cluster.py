"""The nodes of a cluster (README, "Cluster mode")."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from jeeves_runner.api.deps import get_control
from jeeves_runner.api.params import json_response

router = APIRouter(tags=["cluster"])


class NodeBody(BaseModel):
    id: str
    host: str
    labels: list[str] = Field(description="Its cluster.labels and its node id")
    leader: bool = Field(description="Plans the fires now")
    state: Literal["up", "lost", "stopped"] = Field(
        description="up: heartbeating; lost: silent for 3 heartbeats, its runs closed by a "
        "peer; stopped: stopped cleanly"
    )
    heartbeat_ms: int
    started_at: str
    last_heartbeat: str
    stopped_at: str | None
    stop_reason: str | None
    running: int = Field(description="Its runs executing now")


class ClusterBody(BaseModel):
    enabled: bool = Field(description="False for a single runner (cluster mode off)")
    node_id: str | None = Field(description="The node that answered")
    nodes: list[NodeBody]


@router.get("/cluster", response_model=ClusterBody, summary="The nodes of the cluster")
async def cluster(request: Request) -> Response:
    return json_response(await get_control(request).cluster_view())
