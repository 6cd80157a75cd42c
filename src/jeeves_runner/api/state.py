"""Script state, read-only: namespaces, the keys of one, and one key with its items.

Expired keys are not shown, whether or not maintenance has deleted them yet: the API sees
exactly what a job script's `get_state` would. A key may hold `/`; the route takes the rest
of the path as the key.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field

from jeeves_runner.api.deps import control_dependency, now_instant
from jeeves_runner.api.errors import ApiError
from jeeves_runner.api.params import error_responses, json_response, limit_param
from jeeves_runner.control import RunnerControl
from jeeves_runner.store.gateway import StoreGateway
from jeeves_runner.store.protocols import Store

NAMESPACE_NOT_FOUND = "Namespace not found"
KEY_NOT_FOUND = "State key not found"

router = APIRouter(tags=["state"])

Control = Annotated[RunnerControl, Depends(control_dependency)]
Limit = Annotated[int, Depends(limit_param)]


class NamespaceSummary(BaseModel):
    namespace: str
    keys: int = Field(description="Live (unexpired) keys in the namespace")


class NamespaceList(BaseModel):
    namespaces: list[NamespaceSummary]


class KeySummary(BaseModel):
    key: str
    value: str | None
    expires_at: str | None
    updated_at: str
    item_count: int


class NamespaceKeys(BaseModel):
    namespace: str
    total: int = Field(description="Live keys in the namespace; `keys` holds at most `limit`")
    keys: list[KeySummary]


class ItemBody(BaseModel):
    item_key: str
    value: str | None
    created_at: str
    updated_at: str


class KeyDetail(BaseModel):
    namespace: str
    key: str
    value: str | None
    expires_at: str | None
    updated_at: str
    item_count: int = Field(description="Items under the key; `items` holds at most `limit`")
    items: list[ItemBody] = Field(description="Most recently written first")


async def _state(control: Control) -> StoreGateway:
    return control.store


State = Annotated[StoreGateway, Depends(_state)]
Now = Annotated[str, Depends(now_instant)]


@router.get("/state", response_model=NamespaceList, summary="Namespaces with live keys")
async def list_namespaces(state: State, now: Now) -> Response:
    rows = await state.read(lambda s: s.state.namespaces(now))
    return json_response({"namespaces": rows})


@router.get(
    "/state/{namespace}",
    response_model=NamespaceKeys,
    responses=error_responses(400, 404),
    summary="The keys of a namespace with their values, in key order",
)
async def list_keys(namespace: str, state: State, now: Now, limit: Limit) -> Response:
    def read(s: Store) -> tuple[int, list[dict[str, Any]]]:
        return s.state.count_keys(namespace, now), s.state.list_keys(namespace, now, limit)

    total, keys = await state.read(read)
    if total == 0:
        raise ApiError(404, NAMESPACE_NOT_FOUND)
    return json_response({"namespace": namespace, "total": total, "keys": keys})


@router.get(
    "/state/{namespace}/{key:path}",
    response_model=KeyDetail,
    responses=error_responses(400, 404),
    summary="One key's value and its items",
)
async def get_key(namespace: str, key: str, state: State, now: Now, limit: Limit) -> Response:
    def read(s: Store) -> dict[str, Any] | None:
        entry = s.state.get_entry(namespace, key, now)
        if entry is None:
            return None
        return {
            "namespace": entry.namespace,
            "key": entry.key,
            "value": entry.value,
            "expires_at": entry.expires_at,
            "updated_at": entry.updated_at,
            "item_count": s.state.count_items(namespace, key, now),
            "items": s.state.list_items(namespace, key, now, limit),
        }

    body = await state.read(read)
    if body is None:
        raise ApiError(404, KEY_NOT_FOUND)
    return json_response(body)
