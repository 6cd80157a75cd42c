"""The state and queue operations behind the CLI verbs and `batch`: one function each,
taking an open `DataSession` and named values, returning the JSON object the verb prints.

Kept free of click so `batch` can call them a few thousand times a second.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast

from jeeves_runner.cli.common import CliError, load
from jeeves_runner.client import DB_PATH_ENV, RunnerClient
from jeeves_runner.clock import SystemClock
from jeeves_runner.models import DEFAULT_DB_PATH, format_instant
from jeeves_runner.queue_model import (
    DEFAULT_LEASE_MS,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_RETENTION_DAYS,
    QueueExistsError,
)
from jeeves_runner.store.locations import DB_URL_ENV
from jeeves_runner.store.protocols import Store


def resolve_db_path(db_path: str | None, config_path: str | None) -> str:
    """`--db`, else `-c`'s dbUrl or dbPath, else $JR_DB_URL, else $JR_DB_PATH, else the
    config default."""
    if db_path is not None and config_path is not None:
        raise CliError("use either --db or -c, not both")
    if db_path is not None:
        return db_path
    if config_path is not None:
        return load(config_path).db_location
    return os.environ.get(DB_URL_ENV) or os.environ.get(DB_PATH_ENV) or DEFAULT_DB_PATH


class DataSession:
    """An open database: the client for operations, the stores for the extra detail a
    verb prints."""

    def __init__(self, store: Store) -> None:
        self.clock = SystemClock()
        self.client = RunnerClient.on_store(store, self.clock)
        self.state = store.state
        self.queues = store.queues

    def now(self) -> str:
        return format_instant(self.clock.now())


# -- state ------------------------------------------------------------------------------------


def state_get(s: DataSession, namespace: str, key: str) -> dict[str, Any]:
    value = s.client.get_state(namespace, key)
    entry = s.state.get_entry(namespace, key, s.now()) if value is not None else None
    expires_at = entry.expires_at if entry is not None else None
    return {"namespace": namespace, "key": key, "value": value, "expires_at": expires_at}


def state_set(
    s: DataSession, namespace: str, key: str, value: str, ttl: str | None = None
) -> dict[str, Any]:
    s.client.set_state(namespace, key, value, ttl=ttl)
    entry = s.state.get_entry(namespace, key, s.now())
    expires_at = entry.expires_at if entry is not None else None
    return {"namespace": namespace, "key": key, "value": value, "expires_at": expires_at}


def state_delete(s: DataSession, namespace: str, key: str) -> dict[str, Any]:
    deleted = s.client.delete_state(namespace, key)
    return {"namespace": namespace, "key": key, "deleted": deleted}


def items_list(
    s: DataSession, namespace: str, key: str, limit: int | None = None, order: str = "desc"
) -> dict[str, Any]:
    direction = cast(Literal["asc", "desc"], order)
    keys = s.client.list_item_keys(namespace, key, limit=limit, order=direction)
    return {"namespace": namespace, "key": key, "item_keys": keys}


def items_get(s: DataSession, namespace: str, key: str, item_key: str) -> dict[str, Any]:
    exists = s.client.has_item(namespace, key, item_key)
    value = s.client.get_item(namespace, key, item_key) if exists else None
    return {
        "namespace": namespace,
        "key": key,
        "item_key": item_key,
        "exists": exists,
        "value": value,
    }


def items_has(s: DataSession, namespace: str, key: str, item_key: str) -> dict[str, Any]:
    exists = s.client.has_item(namespace, key, item_key)
    return {"namespace": namespace, "key": key, "item_key": item_key, "exists": exists}


def items_set(
    s: DataSession, namespace: str, key: str, item_key: str, value: str | None = None
) -> dict[str, Any]:
    s.client.set_item(namespace, key, item_key, value)
    return {"namespace": namespace, "key": key, "item_key": item_key, "value": value}


def items_delete(s: DataSession, namespace: str, key: str, item_key: str) -> dict[str, Any]:
    deleted = s.client.delete_item(namespace, key, item_key)
    return {"namespace": namespace, "key": key, "item_key": item_key, "deleted": deleted}


def items_count(s: DataSession, namespace: str, key: str) -> dict[str, Any]:
    return {"namespace": namespace, "key": key, "count": s.client.count_items(namespace, key)}


def items_prune(s: DataSession, namespace: str, key: str, keep: int) -> dict[str, Any]:
    deleted = s.client.prune_items(namespace, key, keep)
    return {"namespace": namespace, "key": key, "deleted": deleted}


# -- queues -----------------------------------------------------------------------------------


def queue_enqueue(
    s: DataSession,
    name: str,
    payload: Any,
    priority: int = 0,
    max_attempts: int | None = None,
) -> dict[str, Any]:
    item_id = s.client.enqueue(name, payload, priority=priority, max_attempts=max_attempts)
    return {"queue": name, "id": item_id, "duplicate": item_id == -1}


def queue_dequeue(s: DataSession, name: str, count: int = 1) -> dict[str, Any]:
    claimed = s.client.dequeue(name, count)
    return {"queue": name, "items": [item.as_dict() for item in claimed]}


def _not_claimed(s: DataSession, item_id: int, verb: str) -> CliError:
    row = s.queues.get_item(item_id)
    if row is None:
        return CliError(f"Queue item {item_id} not found")
    return CliError(
        f"Queue item {item_id} is {row['status']}, not processing: only a claimed item can be "
        f"marked {verb}"
    )


def queue_done(s: DataSession, id: int) -> dict[str, Any]:
    if not s.client.done(id):
        raise _not_claimed(s, id, "done")
    return {"id": id, "status": "done"}


def queue_fail(
    s: DataSession,
    id: int,
    error: str | None = None,
) -> dict[str, Any]:
    status = s.client.fail(id, error)
    if status is None:
        raise _not_claimed(s, id, "failed")
    return {"id": id, "status": status.value}


@dataclass(frozen=True)
class QueueSettings:
    """What `add-queue` was told; None is "not given"."""

    name: str | None = None
    description: str | None = None
    dedup_expr: str | None = None
    dedup_scope: str | None = None
    max_attempts: int | None = None
    retention_days: int | None = None
    lease_ms: int | None = None


def add_queue(
    s: DataSession, queue_id: str, given: QueueSettings, *, replace: bool
) -> dict[str, Any]:
    """A new queue takes the defaults for what is not given. `replace` changes only what is
    given and keeps the rest of the stored definition (an empty `dedup_expr` or
    `description` clears it)."""
    current = s.client.get_queue(queue_id) if replace else None
    # What is not given: the stored value when replacing an existing queue, else the default.
    base = QueueSettings(
        name=queue_id,
        dedup_scope="pending",
        max_attempts=DEFAULT_MAX_ATTEMPTS,
        retention_days=DEFAULT_RETENTION_DAYS,
        lease_ms=DEFAULT_LEASE_MS,
    )
    if current is not None:
        base = QueueSettings(
            name=current.name,
            description=current.description,
            dedup_expr=current.dedup_expr,
            dedup_scope=current.dedup_scope.value,
            max_attempts=current.max_attempts,
            retention_days=current.retention_days,
            lease_ms=current.lease_ms,
        )
    merged = QueueSettings(
        **{
            name: given_value if given_value is not None else getattr(base, name)
            for name, given_value in vars(given).items()
        }
    )
    try:
        definition = s.client.add_queue(
            queue_id,
            merged.name,
            description=merged.description or None,  # "" clears it
            dedup_expr=merged.dedup_expr or None,
            dedup_scope=merged.dedup_scope or "pending",
            max_attempts=merged.max_attempts or DEFAULT_MAX_ATTEMPTS,
            retention_days=(
                merged.retention_days
                if merged.retention_days is not None
                else DEFAULT_RETENTION_DAYS
            ),
            lease_ms=merged.lease_ms or DEFAULT_LEASE_MS,
            replace=replace,
        )
    except QueueExistsError as exc:
        raise CliError(f"{exc}; use --replace to change its settings") from None
    return definition.as_dict()


def list_queues(s: DataSession) -> list[dict[str, Any]]:
    return s.queues.list_queues_with_counts()


def parse_payload(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"JSON argument is not valid JSON: {exc}") from None


Operation = Callable[..., dict[str, Any]]
