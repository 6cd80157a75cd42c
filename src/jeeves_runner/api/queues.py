"""Queues, read-only: definitions with counts, one queue's status, and a peek at what is next.

Nothing here claims or changes an item; consumers use the client library or the CLI. Counts
read every pending item of a queue, so they are built off the event loop.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from jeeves_runner.api.deps import control_dependency, now_instant
from jeeves_runner.api.errors import ApiError
from jeeves_runner.api.params import (
    LIMIT_MAX,
    error_responses,
    json_response,
    limit_schema,
    parse_limit,
)
from jeeves_runner.control import RunnerControl
from jeeves_runner.queue_model import QueueItem
from jeeves_runner.store.gateway import StoreGateway
from jeeves_runner.store.protocols import Store

QUEUE_NOT_FOUND = "Queue not found"
PEEK_LIMIT_DEFAULT = 10

router = APIRouter(tags=["queues"])

Control = Annotated[RunnerControl, Depends(control_dependency)]


class QueueSummary(BaseModel):
    id: str
    name: str
    description: str | None
    dedup_expr: str | None = Field(description="JSONPath into the payload giving its dedup key")
    dedup_scope: Literal["pending", "all"]
    max_attempts: int
    retention_days: int = Field(description="Days done and failed items are kept")
    lease_ms: int = Field(description="How long a claim lasts before the item is delivered again")
    created_at: str
    pending: int
    processing: int
    failed: int


class QueueList(BaseModel):
    queues: list[QueueSummary]


class QueueStatusBody(BaseModel):
    depth: int = Field(description="Pending items")
    claimedCount: int = Field(description="Items claimed by a consumer (processing)")
    failedCount: int = Field(description="Dead-lettered items")
    oldestAge: int | None = Field(
        description="Milliseconds the oldest pending item has waited; null when none is pending"
    )


class PeekItem(BaseModel):
    id: int
    queue: str
    payload: Any
    priority: int
    attempts: int
    max_attempts: int
    created_at: str
    lease_expires_at: str | None


class PeekList(BaseModel):
    items: list[PeekItem]


async def _queues(control: Control) -> StoreGateway:
    return control.store


async def peek_limit(
    # Text, parsed by parse_limit, so every bad value gets the API's one `limit` sentence.
    limit: Annotated[
        str | None,
        Query(
            description=f"Most items to show: 1 to {LIMIT_MAX}, {PEEK_LIMIT_DEFAULT} when omitted.",
            json_schema_extra=limit_schema,
        ),
    ] = None,
) -> int:
    return parse_limit(limit, default=PEEK_LIMIT_DEFAULT)


Queues = Annotated[StoreGateway, Depends(_queues)]
Now = Annotated[str, Depends(now_instant)]


@router.get("/queues", response_model=QueueList, summary="Queue definitions with item counts")
async def list_queues(queues: Queues) -> Response:
    rows = await queues.read(lambda s: s.queues.list_queues_with_counts())
    return json_response({"queues": rows})


@router.get(
    "/queues/{queue_id}/status",
    response_model=QueueStatusBody,
    responses=error_responses(404),
    summary="Depth, claimed and failed counts, and the age of the oldest pending item",
)
async def queue_status(queue_id: str, queues: Queues, now: Now) -> Response:
    status = await queues.read(lambda s: s.queues.queue_status(queue_id, now))
    if status is None:
        raise ApiError(404, QUEUE_NOT_FOUND)
    return json_response(status)


@router.get(
    "/queues/{queue_id}/peek",
    response_model=PeekList,
    responses=error_responses(400, 404),
    summary="The next pending items in claim order, without claiming them",
)
async def peek(
    queue_id: str, queues: Queues, limit: Annotated[int, Depends(peek_limit)]
) -> Response:
    def read(s: Store) -> list[QueueItem] | None:
        items = s.queues.peek(queue_id, limit)
        if not items and s.queues.get_queue(queue_id) is None:
            return None
        return items

    items = await queues.read(read)
    if items is None:
        raise ApiError(404, QUEUE_NOT_FOUND)
    return json_response({"items": [item.as_dict() for item in items]})
