"""state, queue, add-queue, list-queues: the client library's operations for any language.

Every command prints one line of JSON. The database is, in this order: `--db PATH`, the
`dbPath` of `-c CONFIG`, `$JR_DB_PATH` (the runner sets it for every job), else the config
default (`./data/runner.sqlite`). `--db` and `-c` together are an error.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, TypeVar, cast

import click

from jeeves_runner.cli.common import CliError, config_option, load, opened_store
from jeeves_runner.client import DB_PATH_ENV, MAX_LEASE_MS, MAX_RETENTION_DAYS, RunnerClient
from jeeves_runner.clock import SystemClock
from jeeves_runner.models import format_instant
from jeeves_runner.queue_model import QueueExistsError
from jeeves_runner.store import SqliteStore

F = TypeVar("F", bound=Callable[..., Any])


def database_options(func: F) -> F:
    func = click.option(
        "--db",
        "db_path",
        type=click.Path(dir_okay=False),
        default=None,
        help=f"SQLite file. Default: -c's dbPath, else ${DB_PATH_ENV}, else the config default.",
    )(func)
    return config_option(func)


def resolve_db_path(db_path: str | None, config_path: str | None) -> str:
    if db_path is not None and config_path is not None:
        raise CliError("use either --db or -c, not both")
    if db_path is not None:
        return db_path
    if config_path is not None:
        return load(config_path).db_path
    from_env = os.environ.get(DB_PATH_ENV)
    if from_env:
        return from_env
    return load(None).db_path


class _Session:
    """An open database for one command: the client for operations, the stores for the
    extra detail a command prints."""

    def __init__(self, store: SqliteStore) -> None:
        self.clock = SystemClock()
        self.client = RunnerClient.on_store(store, self.clock)
        self.state = store.state
        self.queues = store.queues

    def now(self) -> str:
        return format_instant(self.clock.now())


@contextmanager
def _session(db_path: str | None, config_path: str | None) -> Iterator[_Session]:
    with opened_store(resolve_db_path(db_path, config_path)) as store:
        try:
            yield _Session(store)
        except ValueError as exc:  # the client's checks: ttl, ids, counts, dedup expression
            raise CliError(str(exc)) from None


def _print(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False))


# -- state ------------------------------------------------------------------------------------


@click.group()
def state() -> None:
    """Key/value state with optional TTL, and item collections under a key."""


@state.command("get")
@click.argument("namespace")
@click.argument("key")
@click.option("--raw", is_flag=True, help="Print the value alone (nothing when missing).")
@database_options
def state_get(
    namespace: str, key: str, raw: bool, db_path: str | None, config_path: str | None
) -> None:
    """Print a value: {"namespace", "key", "value", "expires_at"}; value is null when the key
    is missing or expired."""
    with _session(db_path, config_path) as s:
        value = s.client.get_state(namespace, key)
        entry = s.state.get_entry(namespace, key, s.now()) if value is not None else None
    if raw:
        if value is not None:
            click.echo(value)
        return
    expires_at = entry.expires_at if entry is not None else None
    _print({"namespace": namespace, "key": key, "value": value, "expires_at": expires_at})


@state.command("set")
@click.argument("namespace")
@click.argument("key")
@click.argument("value")
@click.option("--ttl", default=None, help="Expire after this long: 90s, 60m, 24h, 30d.")
@database_options
def state_set(
    namespace: str,
    key: str,
    value: str,
    ttl: str | None,
    db_path: str | None,
    config_path: str | None,
) -> None:
    """Set a value (text, stored as given). Without --ttl it never expires."""
    with _session(db_path, config_path) as s:
        s.client.set_state(namespace, key, value, ttl=ttl)
        entry = s.state.get_entry(namespace, key, s.now())
    expires_at = entry.expires_at if entry is not None else None
    _print({"namespace": namespace, "key": key, "value": value, "expires_at": expires_at})


@state.command("delete")
@click.argument("namespace")
@click.argument("key")
@database_options
def state_delete(namespace: str, key: str, db_path: str | None, config_path: str | None) -> None:
    """Delete a value and the items under it: {"deleted": true|false}."""
    with _session(db_path, config_path) as s:
        deleted = s.client.delete_state(namespace, key)
    _print({"namespace": namespace, "key": key, "deleted": deleted})


@state.group("items")
def items() -> None:
    """A collection of items under one state key."""


@items.command("list")
@click.argument("namespace")
@click.argument("key")
@click.option("--limit", type=click.IntRange(min=0), default=None, help="Most keys to print.")
@click.option(
    "--order",
    type=click.Choice(["desc", "asc"]),
    default="desc",
    show_default=True,
    help="desc: most recently written first.",
)
@database_options
def items_list(
    namespace: str,
    key: str,
    limit: int | None,
    order: str,
    db_path: str | None,
    config_path: str | None,
) -> None:
    """Print item keys: {"item_keys": [...]}."""
    direction = cast(Literal["asc", "desc"], order)
    with _session(db_path, config_path) as s:
        keys = s.client.list_item_keys(namespace, key, limit=limit, order=direction)
    _print({"namespace": namespace, "key": key, "item_keys": keys})


@items.command("get")
@click.argument("namespace")
@click.argument("key")
@click.argument("item_key")
@database_options
def items_get(
    namespace: str, key: str, item_key: str, db_path: str | None, config_path: str | None
) -> None:
    """Print an item: {"exists", "value"} (value null when missing or stored without one)."""
    with _session(db_path, config_path) as s:
        exists = s.client.has_item(namespace, key, item_key)
        value = s.client.get_item(namespace, key, item_key) if exists else None
    _print(
        {"namespace": namespace, "key": key, "item_key": item_key, "exists": exists, "value": value}
    )


@items.command("has")
@click.argument("namespace")
@click.argument("key")
@click.argument("item_key")
@database_options
def items_has(
    namespace: str, key: str, item_key: str, db_path: str | None, config_path: str | None
) -> None:
    """Print whether an item exists: {"exists": true|false}."""
    with _session(db_path, config_path) as s:
        exists = s.client.has_item(namespace, key, item_key)
    _print({"namespace": namespace, "key": key, "item_key": item_key, "exists": exists})


@items.command("set")
@click.argument("namespace")
@click.argument("key")
@click.argument("item_key")
@click.argument("value", required=False)
@database_options
def items_set(
    namespace: str,
    key: str,
    item_key: str,
    value: str | None,
    db_path: str | None,
    config_path: str | None,
) -> None:
    """Create or replace an item (VALUE is optional). Creates the parent key if missing."""
    with _session(db_path, config_path) as s:
        s.client.set_item(namespace, key, item_key, value)
    _print({"namespace": namespace, "key": key, "item_key": item_key, "value": value})


@items.command("delete")
@click.argument("namespace")
@click.argument("key")
@click.argument("item_key")
@database_options
def items_delete(
    namespace: str, key: str, item_key: str, db_path: str | None, config_path: str | None
) -> None:
    """Delete an item: {"deleted": true|false}."""
    with _session(db_path, config_path) as s:
        deleted = s.client.delete_item(namespace, key, item_key)
    _print({"namespace": namespace, "key": key, "item_key": item_key, "deleted": deleted})


@items.command("count")
@click.argument("namespace")
@click.argument("key")
@database_options
def items_count(namespace: str, key: str, db_path: str | None, config_path: str | None) -> None:
    """Print how many items a key holds: {"count": N}."""
    with _session(db_path, config_path) as s:
        count = s.client.count_items(namespace, key)
    _print({"namespace": namespace, "key": key, "count": count})


@items.command("prune")
@click.argument("namespace")
@click.argument("key")
@click.option("--keep", type=click.IntRange(min=0), required=True, help="Newest items to keep.")
@database_options
def items_prune(
    namespace: str, key: str, keep: int, db_path: str | None, config_path: str | None
) -> None:
    """Keep the newest --keep items, delete the rest: {"deleted": N}."""
    with _session(db_path, config_path) as s:
        deleted = s.client.prune_items(namespace, key, keep)
    _print({"namespace": namespace, "key": key, "deleted": deleted})


# -- queues -----------------------------------------------------------------------------------


@click.group()
def queue() -> None:
    """Work queues: enqueue, claim (dequeue), done, fail."""


def _payload(text: str) -> Any:
    if text == "-":
        text = sys.stdin.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"JSON argument is not valid JSON: {exc}") from None


@queue.command("enqueue")
@click.argument("name")
@click.argument("payload", metavar="JSON")
@click.option("--priority", type=int, default=0, show_default=True, help="Higher is first.")
@click.option(
    "--max-attempts",
    type=click.IntRange(min=1),
    default=None,
    help="Default: the queue's setting.",
)
@database_options
def queue_enqueue(
    name: str,
    payload: str,
    priority: int,
    max_attempts: int | None,
    db_path: str | None,
    config_path: str | None,
) -> None:
    """Add a JSON payload (`-` reads it from stdin): {"id": N, "duplicate": false}, or
    {"id": -1, "duplicate": true} when the queue's dedup finds it already there."""
    value = _payload(payload)
    with _session(db_path, config_path) as s:
        item_id = s.client.enqueue(name, value, priority=priority, max_attempts=max_attempts)
    _print({"queue": name, "id": item_id, "duplicate": item_id == -1})


@queue.command("dequeue")
@click.argument("name")
@click.option("-n", "--count", type=click.IntRange(min=1), default=1, show_default=True)
@database_options
def queue_dequeue(name: str, count: int, db_path: str | None, config_path: str | None) -> None:
    """Claim up to N pending items: {"items": [...]}. Finish each with `queue done` or
    `queue fail` before the queue's lease runs out."""
    with _session(db_path, config_path) as s:
        claimed = s.client.dequeue(name, count)
    _print({"queue": name, "items": [item.as_dict() for item in claimed]})


def _not_claimed(s: _Session, item_id: int, verb: str) -> CliError:
    row = s.queues.get_item(item_id)
    if row is None:
        return CliError(f"Queue item {item_id} not found")
    return CliError(
        f"Queue item {item_id} is {row['status']}, not processing: only a claimed item can be "
        f"marked {verb}"
    )


@queue.command("done")
@click.argument("item_id", metavar="ID", type=int)
@database_options
def queue_done(item_id: int, db_path: str | None, config_path: str | None) -> None:
    """Mark a claimed item done."""
    with _session(db_path, config_path) as s:
        if not s.client.done(item_id):
            raise _not_claimed(s, item_id, "done")
    _print({"id": item_id, "status": "done"})


@queue.command("fail")
@click.argument("item_id", metavar="ID", type=int)
@click.option("--error", default=None, help="Why it failed (kept on the item).")
@database_options
def queue_fail(
    item_id: int, error: str | None, db_path: str | None, config_path: str | None
) -> None:
    """Give a claimed item back: pending while it has attempts left, else failed."""
    with _session(db_path, config_path) as s:
        status = s.client.fail(item_id, error)
        if status is None:
            raise _not_claimed(s, item_id, "failed")
    _print({"id": item_id, "status": status.value})


@click.command("add-queue")
@click.option("--id", "queue_id", required=True, help="Queue id: letters, digits, - _ . :")
@click.option("--name", required=True)
@click.option("--description", default=None)
@click.option("--dedup-expr", default=None, help="JSONPath into the payload, e.g. $.url")
@click.option(
    "--dedup-scope",
    type=click.Choice(["pending", "all"]),
    default="pending",
    show_default=True,
    help="pending: against pending and claimed items; all: also against done ones.",
)
@click.option("--max-attempts", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--retention-days",
    type=click.IntRange(0, MAX_RETENTION_DAYS),
    default=7,
    show_default=True,
    help="Days done and failed items are kept.",
)
@click.option(
    "--lease",
    "lease_ms",
    type=click.IntRange(1, MAX_LEASE_MS),
    default=300_000,
    show_default=True,
    help="How long a claim lasts, in ms; an item not finished by then is delivered again.",
)
@click.option("--replace", is_flag=True, help="Change an existing queue's settings.")
@database_options
def add_queue(
    queue_id: str,
    name: str,
    description: str | None,
    dedup_expr: str | None,
    dedup_scope: str,
    max_attempts: int,
    retention_days: int,
    lease_ms: int,
    replace: bool,
    db_path: str | None,
    config_path: str | None,
) -> None:
    """Define a queue (prints the stored definition)."""
    with _session(db_path, config_path) as s:
        try:
            definition = s.client.add_queue(
                queue_id,
                name,
                description=description,
                dedup_expr=dedup_expr,
                dedup_scope=dedup_scope,
                max_attempts=max_attempts,
                retention_days=retention_days,
                lease_ms=lease_ms,
                replace=replace,
            )
        except QueueExistsError as exc:
            raise CliError(f"{exc}; use --replace to change its settings") from None
    _print(definition.as_dict())


@click.command("list-queues")
@database_options
def list_queues(db_path: str | None, config_path: str | None) -> None:
    """Print queue definitions with pending, processing and failed counts."""
    with _session(db_path, config_path) as s:
        rows = s.queues.list_queues_with_counts()
    _print({"queues": rows})


COMMANDS: list[click.Command] = [state, queue, add_queue, list_queues]
