"""Work queues as values: definitions, items, statuses, dedup keys. No I/O here."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import StrEnum
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jsonpath

DEFAULT_MAX_ATTEMPTS = 1
DEFAULT_RETENTION_DAYS = 7
DEFAULT_LEASE_MS = 300_000

LEASE_EXPIRED_ERROR = "Lease expired before the consumer called done or fail"


class ItemStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"


class DedupScope(StrEnum):
    PENDING = "pending"  # dedup against pending and processing items
    ALL = "all"  # ... and done ones (until retention deletes them)


class QueueExistsError(Exception):
    def __init__(self, queue_id: str) -> None:
        super().__init__(f"Queue '{queue_id}' already exists")
        self.queue_id = queue_id


class DedupExpressionError(ValueError):
    """A queue's dedup expression is not JSONPath this program can evaluate."""


@dataclass(frozen=True, slots=True)
class QueueDefinition:
    id: str
    name: str
    description: str | None = None
    dedup_expr: str | None = None
    dedup_scope: DedupScope = DedupScope.PENDING
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    retention_days: int = DEFAULT_RETENTION_DAYS
    lease_ms: int = DEFAULT_LEASE_MS
    created_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["dedup_scope"] = self.dedup_scope.value
        return data


@dataclass(frozen=True, slots=True)
class QueueItem:
    """A queue item as a consumer or an operator sees it; `payload` is decoded JSON."""

    id: int
    queue: str
    payload: Any
    priority: int
    attempts: int
    max_attempts: int
    created_at: str
    lease_expires_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class LeaseSweep:
    """What a pass over expired leases did."""

    returned: int  # back to pending, to be claimed again
    dead_lettered: int  # attempts used up: now failed


@lru_cache(maxsize=64)
def _compiled(expr: str) -> jsonpath.JSONPath | jsonpath.CompoundJSONPath:
    # Imported here: it costs ~35 ms, and only queues with a dedup expression need it (the
    # `state` and `queue` CLI verbs are run many times per job).
    import jsonpath

    try:
        return jsonpath.compile(expr)
    except jsonpath.JSONPathError as exc:
        first_line = str(exc).splitlines()[0]
        raise DedupExpressionError(
            f"dedup expression {expr!r} is not valid JSONPath: {first_line}"
        ) from None


def check_dedup_expr(expr: str) -> None:
    """Raise DedupExpressionError unless `expr` is a usable JSONPath."""
    if not expr.strip():
        raise DedupExpressionError("dedup expression must not be empty")
    _compiled(expr)


def dedup_key(expr: str, payload: Any) -> str | None:
    """The dedup key of a payload: what the JSONPath finds in it, as text.

    No match (or an empty string) means no key, and the item is always enqueued. One string
    match is the key as is (the original runner stored the same text, so keys in a migrated
    database still match); any other single match, or several matches, is canonical JSON.
    """
    import jsonpath

    try:
        found = _compiled(expr).findall(payload)
    except jsonpath.JSONPathError as exc:
        raise DedupExpressionError(f"dedup expression {expr!r} failed: {exc}") from None
    if not found:
        return None
    value: Any = found[0] if len(found) == 1 else list(found)
    if isinstance(value, str):
        return value or None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
