"""The audit log: reading it (admin scope), and recording the changes made over HTTP."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from jeeves_runner.access_model import AuditAction, AuditEntry
from jeeves_runner.api.deps import get_control
from jeeves_runner.api.errors import ApiError
from jeeves_runner.api.params import LIMIT_OPENAPI, error_responses, json_response, limit_from
from jeeves_runner.auth import ANONYMOUS
from jeeves_runner.clock import Clock, SystemClock
from jeeves_runner.models import format_instant

router = APIRouter(tags=["audit"])

SINCE_ERROR = "since must be an ISO 8601 instant with a zone, such as 2026-03-02T01:03:00Z"


class AuditEntryBody(BaseModel):
    id: int
    at: str
    actor: str
    address: str
    action: AuditAction
    target: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AuditList(BaseModel):
    entries: list[AuditEntryBody]


def parse_since(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        if moment.tzinfo is None:
            raise ValueError(text)
        return format_instant(moment)
    except (ValueError, OverflowError):  # overflow: year 9999 a few hours west of UTC
        raise ApiError(400, SINCE_ERROR) from None


@router.get(
    "/audit",
    response_model=AuditList,
    responses=error_responses(400, 401, 403),
    openapi_extra=LIMIT_OPENAPI,
    summary="Changes, newest first (admin)",
)
async def list_audit(request: Request) -> Response:
    limit = limit_from(request)
    since = parse_since(request.query_params.get("since"))
    entries = await get_control(request).store.read(lambda s: s.audit.list_entries(limit, since))
    return json_response({"entries": entries})


async def record(
    request: Request,
    action: AuditAction,
    target: str | None,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """One audit row for a change made by this request: who from its token, where from its
    peer address."""
    clock: Clock = getattr(request.app.state, "clock", None) or SystemClock()
    actor = str(getattr(request.state, "actor", ANONYMOUS))
    address = request.client.host if request.client is not None else "unknown"
    entry = AuditEntry(format_instant(clock.now()), actor, address, action, target, before, after)
    await get_control(request).store.write(lambda s: s.audit.record(entry))


def record_later(
    request: Request,
    action: AuditAction,
    target: str | None,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """As `record`, without waiting for the write (a failure is logged by the gateway)."""
    clock: Clock = getattr(request.app.state, "clock", None) or SystemClock()
    actor = str(getattr(request.state, "actor", ANONYMOUS))
    address = request.client.host if request.client is not None else "unknown"
    entry = AuditEntry(format_instant(clock.now()), actor, address, action, target, before, after)
    get_control(request).store.call_soon_write(lambda s: s.audit.record(entry))
