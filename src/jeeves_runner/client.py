"""What job scripts import: key/value state with TTL, item collections, and work queues.

    from jeeves_runner.client import RunnerClient

    with RunnerClient() as jr:  # the runner's database: JR_DB_URL or JR_DB_PATH (it sets one)
        since = jr.get_state("mail", "cursor")
        ...
        jr.set_state("mail", "cursor", newest_id)
        jr.enqueue("summaries", {"message": newest_id}, priority=5)

State values are text (store structured values with `json.dumps`). A value set with a TTL
reads as missing from the moment it expires, whether or not maintenance has deleted it yet,
and so do the items under it. Queue payloads are any JSON value. A claim (`dequeue`) is a
lease: an item not marked `done` or `fail`-ed before its queue's lease runs out is delivered
again (at least once), until it has used its `max_attempts`, and then it is `failed`.

Every call reads the time from the client's clock, so tests can hand it a `FakeClock`.
"""

from __future__ import annotations

import json
import os
import re
import threading
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Literal

from jeeves_runner.clock import Clock, SystemClock
from jeeves_runner.models import format_instant
from jeeves_runner.queue_model import (
    DEFAULT_LEASE_MS,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_RETENTION_DAYS,
    DedupScope,
    ItemStatus,
    QueueDefinition,
    QueueExistsError,
    QueueItem,
    check_dedup_expr,
)
from jeeves_runner.store import StoreError
from jeeves_runner.store.locations import DB_URL_ENV
from jeeves_runner.store.opening import open_store
from jeeves_runner.store.protocols import Store

__all__ = [
    "DB_PATH_ENV",
    "DB_URL_ENV",
    "DedupScope",
    "ItemStatus",
    "QueueDefinition",
    "QueueExistsError",
    "QueueItem",
    "RunnerClient",
    "StoreError",
    "parse_ttl",
]

DB_PATH_ENV = "JR_DB_PATH"

_TTL = re.compile(r"([0-9]{1,12})([smhd])")  # 12 digits: far past any date, cheap to parse
_TTL_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
# Queue ids appear in URLs (GET /queues/:id/status), so they are kept to URL-safe characters.
_QUEUE_ID = re.compile(r"[A-Za-z0-9_.:-]+")


def parse_ttl(ttl: str) -> timedelta:
    """`30d`, `24h`, `60m`, `90s` as a timedelta. Anything else raises ValueError."""
    match = _TTL.fullmatch(ttl) if isinstance(ttl, str) else None
    if match is None or int(match.group(1)) == 0:
        raise ValueError(
            f"ttl {ttl!r} is not valid: use a whole number above 0 followed by s, m, h or d "
            "(e.g. 90s, 60m, 24h, 30d)"
        )
    try:
        return timedelta(**{_TTL_UNITS[match.group(2)]: int(match.group(1))})
    except OverflowError:
        raise ValueError(f"ttl {ttl!r} is too long") from None


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must not be empty")
    return value


_INT64_MAX = 2**63 - 1
# Claims remembered for fencing done/fail; a consumer that never finishes its items must not
# grow the client without bound (a forgotten claim is finished by id alone).
_MAX_REMEMBERED_CLAIMS = 100_000
MAX_LEASE_MS = 30 * 24 * 3600 * 1000
MAX_RETENTION_DAYS = 36_500


def _integer(name: str, value: object, minimum: int, maximum: int = _INT64_MAX) -> int:
    # bool is an int subclass; True as a priority or count is a mistake, not 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    if value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {value}")
    return value


def _queue_id(value: object) -> str:
    queue = _text("queue", value)
    if not _QUEUE_ID.fullmatch(queue):
        raise ValueError(f"queue {queue!r} may hold only letters, digits, '-', '_', '.' and ':'")
    return queue


def _encode_payload(payload: Any) -> str:
    try:
        return json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except TypeError as exc:
        raise TypeError(f"payload must be JSON-serializable: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"payload must be JSON-serializable: {exc}") from None


class RunnerClient:
    """State, collections and queues in the runner's database.

    Open it with a SQLite file path or a `postgresql://` URL, or without either to use
    `JR_DB_URL` (a PostgreSQL runner sets it) or else `JR_DB_PATH` (a SQLite runner sets it);
    close it (or use it as a context manager) when done. One client may be used from several
    threads.
    """

    def __init__(
        self, db_path: str | os.PathLike[str] | None = None, *, clock: Clock | None = None
    ) -> None:
        if db_path is not None:
            location = os.fspath(db_path)
        else:
            location = os.environ.get(DB_URL_ENV) or os.environ.get(DB_PATH_ENV) or ""
        if location == "":
            raise StoreError(
                f"no database: pass a path or URL to RunnerClient or set {DB_URL_ENV} or "
                f"{DB_PATH_ENV} (the runner sets one of them for every job)"
            )
        self._init(open_store(location), clock, owns_store=True)

    @classmethod
    def on_store(cls, store: Store, clock: Clock | None = None) -> RunnerClient:
        """A client over a store that is already open; closing the client leaves it open."""
        client = cls.__new__(cls)
        client._init(store, clock, owns_store=False)
        return client

    def _init(self, store: Store, clock: Clock | None, *, owns_store: bool) -> None:
        self._store = store
        self._owns_store = owns_store
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._state = store.state
        self._queues = store.queues
        self._closed = False
        # item id -> attempt number of this client's claim on it, oldest claim first.
        self._claims: dict[int, int] = {}
        self._claims_lock = threading.Lock()

    @property
    def db_path(self) -> str:
        """The SQLite file, or the PostgreSQL URL without its password."""
        return self._store.location

    def close(self) -> None:
        if not self._closed and self._owns_store:
            self._store.close()
        self._closed = True

    def __enter__(self) -> RunnerClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _moment(self) -> datetime:
        if self._closed:
            raise StoreError("this RunnerClient is closed")
        return self._clock.now()

    def _now(self) -> str:
        return format_instant(self._moment())

    # -- state ----------------------------------------------------------------------------

    def get_state(self, namespace: str, key: str) -> str | None:
        """The value, or None when it is missing or expired."""
        return self._state.get(_text("namespace", namespace), _text("key", key), self._now())

    def set_state(self, namespace: str, key: str, value: str, ttl: str | None = None) -> None:
        """Set a value; with `ttl` (`30d`, `24h`, `60m`, `90s`) it expires that long from now,
        without it it never expires (a TTL set earlier is dropped)."""
        namespace, key = _text("namespace", namespace), _text("key", key)
        if not isinstance(value, str):
            raise TypeError(
                f"value must be a string, got {type(value).__name__} (json.dumps it to store "
                "structured data)"
            )
        moment = self._moment()
        expires_at = None
        if ttl is not None:
            try:
                expires_at = format_instant(moment + parse_ttl(ttl))
            except OverflowError:
                raise ValueError(f"ttl {ttl!r} is too long") from None
        self._state.set(namespace, key, value, expires_at, format_instant(moment))

    def delete_state(self, namespace: str, key: str) -> bool:
        """Delete a value and the items under it. True when a live value was there."""
        return self._state.delete(_text("namespace", namespace), _text("key", key), self._now())

    # -- collections under a state key ----------------------------------------------------

    def has_item(self, namespace: str, key: str, item_key: str) -> bool:
        return self._state.has_item(*self._item_address(namespace, key, item_key), self._now())

    def get_item(self, namespace: str, key: str, item_key: str) -> str | None:
        """The item's value; None when the item is missing or was stored without a value."""
        return self._state.get_item(*self._item_address(namespace, key, item_key), self._now())

    def set_item(self, namespace: str, key: str, item_key: str, value: str | None = None) -> None:
        """Create or replace an item (a value is optional: an item alone records that
        something was seen). Creates the parent state key when it is missing."""
        if value is not None and not isinstance(value, str):
            raise TypeError(f"value must be a string or None, got {type(value).__name__}")
        address = self._item_address(namespace, key, item_key)
        self._state.set_item(*address, value, self._now())

    def delete_item(self, namespace: str, key: str, item_key: str) -> bool:
        """True when the item was there."""
        address = self._item_address(namespace, key, item_key)
        return self._state.delete_item(*address, self._now())

    def count_items(self, namespace: str, key: str) -> int:
        return self._state.count_items(
            _text("namespace", namespace), _text("key", key), self._now()
        )

    def prune_items(self, namespace: str, key: str, keep: int) -> int:
        """Keep the `keep` most recently written items, delete the rest; returns how many
        were deleted."""
        keep = _integer("keep", keep, 0)
        return self._state.prune_items(
            _text("namespace", namespace), _text("key", key), keep, self._now()
        )

    def list_item_keys(
        self,
        namespace: str,
        key: str,
        limit: int | None = None,
        order: Literal["asc", "desc"] = "desc",
    ) -> list[str]:
        """Item keys by last write: newest first (`desc`, the default) or oldest first."""
        if limit is not None:
            limit = _integer("limit", limit, 0)
        if order not in ("asc", "desc"):
            raise ValueError(f"order must be 'asc' or 'desc', got {order!r}")
        return self._state.list_item_keys(
            _text("namespace", namespace),
            _text("key", key),
            self._now(),
            limit,
            descending=order == "desc",
        )

    @staticmethod
    def _item_address(namespace: str, key: str, item_key: str) -> tuple[str, str, str]:
        return _text("namespace", namespace), _text("key", key), _text("item_key", item_key)

    # -- queues ---------------------------------------------------------------------------

    def enqueue(
        self,
        queue: str,
        payload: Any,
        priority: int = 0,
        max_attempts: int | None = None,
    ) -> int:
        """Add a JSON payload to a queue; returns the item id, or -1 when the queue's dedup
        expression finds a duplicate in its scope. `max_attempts` defaults to the queue's.
        A queue without a definition is created with the defaults."""
        queue = _queue_id(queue)
        priority = _integer("priority", priority, -_INT64_MAX - 1)
        if max_attempts is not None:
            max_attempts = _integer("max_attempts", max_attempts, 1)
        payload_json = _encode_payload(payload)
        return self._queues.enqueue(queue, payload_json, priority, max_attempts, self._now())

    def dequeue(self, queue: str, count: int = 1) -> list[QueueItem]:
        """Claim up to `count` pending items, highest priority then oldest first. Two
        consumers, in any processes, never get the same item. Each claimed item must be
        passed to `done` or `fail` before the queue's lease runs out."""
        queue = _queue_id(queue)
        count = _integer("count", count, 1)
        items = self._queues.claim(queue, count, self._now())
        with self._claims_lock:
            for item in items:
                self._claims.pop(item.id, None)
                self._claims[item.id] = item.attempts
            while len(self._claims) > _MAX_REMEMBERED_CLAIMS:
                del self._claims[next(iter(self._claims))]
        return items

    def done(self, item_id: int) -> bool:
        """Mark a claimed item done. False when the item is unknown or not claimed, or when
        this client's claim on it was lost: its lease ran out and it went back to the queue
        (maybe to another consumer, whose claim this does not touch)."""
        item_id = _integer("item_id", item_id, 1)
        finished = self._queues.done(item_id, self._now(), self._claimed_attempt(item_id))
        if finished:
            self._forget_claim(item_id)
        return finished

    def fail(self, item_id: int, error: str | None = None) -> ItemStatus | None:
        """Give a claimed item back: `pending` again while attempts < max_attempts, else
        `failed`. Returns the new status, or None when the item is unknown or not claimed
        (or this client's claim on it was lost, as for `done`)."""
        item_id = _integer("item_id", item_id, 1)
        if error is not None and not isinstance(error, str):
            raise TypeError(f"error must be a string or None, got {type(error).__name__}")
        status = self._queues.fail(item_id, error, self._now(), self._claimed_attempt(item_id))
        if status is not None:
            self._forget_claim(item_id)
        return status

    def _claimed_attempt(self, item_id: int) -> int | None:
        """The attempt under which this client claimed the item, if it did: done/fail then
        apply only to that claim, and keep refusing once it is lost. An id claimed elsewhere
        (another process, the CLI) is finished by id alone."""
        with self._claims_lock:
            return self._claims.get(item_id)

    def _forget_claim(self, item_id: int) -> None:
        with self._claims_lock:
            self._claims.pop(item_id, None)

    def add_queue(
        self,
        queue: str,
        name: str | None = None,
        *,
        description: str | None = None,
        dedup_expr: str | None = None,
        dedup_scope: DedupScope | str = DedupScope.PENDING,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        lease_ms: int = DEFAULT_LEASE_MS,
        replace: bool = False,
    ) -> QueueDefinition:
        """Define a queue. An existing one raises QueueExistsError unless `replace`, which
        changes its settings and keeps its items."""
        try:
            scope = DedupScope(dedup_scope)
        except ValueError:
            raise ValueError(
                f"dedup_scope must be 'pending' or 'all', got {dedup_scope!r}"
            ) from None
        if dedup_expr is not None:
            check_dedup_expr(_text("dedup_expr", dedup_expr))
        definition = QueueDefinition(
            id=_queue_id(queue),
            name=_text("name", queue if name is None else name),
            description=description,
            dedup_expr=dedup_expr,
            dedup_scope=scope,
            max_attempts=_integer("max_attempts", max_attempts, 1),
            retention_days=_integer("retention_days", retention_days, 0, MAX_RETENTION_DAYS),
            lease_ms=_integer("lease_ms", lease_ms, 1, MAX_LEASE_MS),
        )
        return self._queues.add_queue(definition, self._now(), replace=replace)

    def get_queue(self, queue: str) -> QueueDefinition | None:
        self._moment()  # refuses a closed client like every other call
        return self._queues.get_queue(_queue_id(queue))

    def list_queues(self) -> list[QueueDefinition]:
        self._moment()
        return self._queues.list_queues()
