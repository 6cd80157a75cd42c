"""state, queue, add-queue, list-queues: the client library's operations for any language.

Every command prints one line of JSON (`list-queues` a table, or JSON with `--json`). The
database is, in this order: `--db PATH_OR_URL`, the `dbUrl` or `dbPath` of `-c CONFIG`,
`$JR_DB_URL`, `$JR_DB_PATH` (the runner sets one of them for every job), else the config
default (`./data/runner.sqlite`). `--db` and `-c` together are an error. A database file that
does not exist is an error, except for `add-queue`, which creates it.

Only what these verbs use is imported (no HTTP client, no config model unless `-c`): job
scripts call them many times per run.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from jeeves_runner.cli import data_ops
from jeeves_runner.cli.common import ArgsCommand, ArgsGroup, CliError, config_option, opened_store
from jeeves_runner.cli.data_ops import DataSession, QueueSettings, resolve_db_path
from jeeves_runner.client import DB_PATH_ENV, DB_URL_ENV, MAX_LEASE_MS, MAX_RETENTION_DAYS

F = TypeVar("F", bound=Callable[..., Any])


def database_options(func: F) -> F:
    func = click.option(
        "--db",
        "db_path",
        type=click.Path(dir_okay=False),
        default=None,
        help=(
            "SQLite file or postgresql:// URL. Default: -c's dbUrl or dbPath, else "
            f"${DB_URL_ENV}, else ${DB_PATH_ENV}, else the config default."
        ),
    )(func)
    return config_option(func)


@contextmanager
def session(
    db_path: str | None, config_path: str | None, *, create: bool = False
) -> Iterator[DataSession]:
    with opened_store(resolve_db_path(db_path, config_path), create=create) as store:
        try:
            yield DataSession(store)
        except ValueError as exc:  # the client's checks: ttl, ids, counts, dedup expression
            raise CliError(str(exc)) from None


def _print(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False))


def _run(
    op: data_ops.Operation, db_path: str | None, config_path: str | None, **values: Any
) -> None:
    with session(db_path, config_path) as s:
        answer = op(s, **values)
    _print(answer)


# -- state ------------------------------------------------------------------------------------


@click.group(cls=ArgsGroup)
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
    with session(db_path, config_path) as s:
        answer = data_ops.state_get(s, namespace, key)
    if raw:
        if answer["value"] is not None:
            click.echo(answer["value"])
        return
    _print(answer)


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
    _run(
        data_ops.state_set, db_path, config_path, namespace=namespace, key=key, value=value, ttl=ttl
    )


@state.command("delete")
@click.argument("namespace")
@click.argument("key")
@database_options
def state_delete(namespace: str, key: str, db_path: str | None, config_path: str | None) -> None:
    """Delete a value and the items under it: {"deleted": true|false}."""
    _run(data_ops.state_delete, db_path, config_path, namespace=namespace, key=key)


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
    _run(
        data_ops.items_list,
        db_path,
        config_path,
        namespace=namespace,
        key=key,
        limit=limit,
        order=order,
    )


@items.command("get")
@click.argument("namespace")
@click.argument("key")
@click.argument("item_key")
@database_options
def items_get(
    namespace: str, key: str, item_key: str, db_path: str | None, config_path: str | None
) -> None:
    """Print an item: {"exists", "value"} (value null when missing or stored without one)."""
    _run(data_ops.items_get, db_path, config_path, namespace=namespace, key=key, item_key=item_key)


@items.command("has")
@click.argument("namespace")
@click.argument("key")
@click.argument("item_key")
@database_options
def items_has(
    namespace: str, key: str, item_key: str, db_path: str | None, config_path: str | None
) -> None:
    """Print whether an item exists: {"exists": true|false}."""
    _run(data_ops.items_has, db_path, config_path, namespace=namespace, key=key, item_key=item_key)


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
    _run(
        data_ops.items_set,
        db_path,
        config_path,
        namespace=namespace,
        key=key,
        item_key=item_key,
        value=value,
    )


@items.command("delete")
@click.argument("namespace")
@click.argument("key")
@click.argument("item_key")
@database_options
def items_delete(
    namespace: str, key: str, item_key: str, db_path: str | None, config_path: str | None
) -> None:
    """Delete an item: {"deleted": true|false}."""
    _run(
        data_ops.items_delete, db_path, config_path, namespace=namespace, key=key, item_key=item_key
    )


@items.command("count")
@click.argument("namespace")
@click.argument("key")
@database_options
def items_count(namespace: str, key: str, db_path: str | None, config_path: str | None) -> None:
    """Print how many items a key holds: {"count": N}."""
    _run(data_ops.items_count, db_path, config_path, namespace=namespace, key=key)


@items.command("prune")
@click.argument("namespace")
@click.argument("key")
@click.option("--keep", type=click.IntRange(min=0), required=True, help="Newest items to keep.")
@database_options
def items_prune(
    namespace: str, key: str, keep: int, db_path: str | None, config_path: str | None
) -> None:
    """Keep the newest --keep items, delete the rest: {"deleted": N}."""
    _run(data_ops.items_prune, db_path, config_path, namespace=namespace, key=key, keep=keep)


# -- queues -----------------------------------------------------------------------------------


@click.group(cls=ArgsGroup)
def queue() -> None:
    """Work queues: enqueue, claim (dequeue), done, fail."""


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
    value = data_ops.parse_payload(sys.stdin.read() if payload == "-" else payload)
    _run(
        data_ops.queue_enqueue,
        db_path,
        config_path,
        name=name,
        payload=value,
        priority=priority,
        max_attempts=max_attempts,
    )


@queue.command("dequeue")
@click.argument("name")
@click.option("-n", "--count", type=click.IntRange(min=1), default=1, show_default=True)
@database_options
def queue_dequeue(name: str, count: int, db_path: str | None, config_path: str | None) -> None:
    """Claim up to N pending items: {"items": [...]}. Finish each with `queue done` or
    `queue fail` before the queue's lease runs out."""
    _run(data_ops.queue_dequeue, db_path, config_path, name=name, count=count)


@queue.command("done")
@click.argument("item_id", metavar="ID", type=int)
@database_options
def queue_done(item_id: int, db_path: str | None, config_path: str | None) -> None:
    """Mark a claimed item done."""
    _run(data_ops.queue_done, db_path, config_path, id=item_id)


@queue.command("fail")
@click.argument("item_id", metavar="ID", type=int)
@click.option("--error", default=None, help="Why it failed (kept on the item).")
@database_options
def queue_fail(
    item_id: int, error: str | None, db_path: str | None, config_path: str | None
) -> None:
    """Give a claimed item back: pending while it has attempts left, else failed."""
    _run(data_ops.queue_fail, db_path, config_path, id=item_id, error=error)


@click.command("add-queue", cls=ArgsCommand)
@click.option("--id", "queue_id", required=True, help="Queue id: letters, digits, - _ . :")
@click.option("--name", default=None, help="Default: the id.")
@click.option("--description", default=None)
@click.option(
    "--dedup-expr", default=None, help="JSONPath into the payload, e.g. $.url ('' for none)"
)
@click.option(
    "--dedup-scope",
    type=click.Choice(["pending", "all"]),
    default=None,
    help="pending (default): against pending and claimed items; all: also against done ones.",
)
@click.option("--max-attempts", type=click.IntRange(min=1), default=None, help="Default: 1.")
@click.option(
    "--retention-days",
    type=click.IntRange(0, MAX_RETENTION_DAYS),
    default=None,
    help="Days done and failed items are kept. Default: 7.",
)
@click.option(
    "--lease",
    "lease_ms",
    type=click.IntRange(1, MAX_LEASE_MS),
    default=None,
    help="How long a claim lasts, in ms (default 300000); an item not finished by then is "
    "delivered again.",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Change an existing queue: only the options given change, the rest is kept.",
)
@database_options
def add_queue(
    queue_id: str,
    name: str | None,
    description: str | None,
    dedup_expr: str | None,
    dedup_scope: str | None,
    max_attempts: int | None,
    retention_days: int | None,
    lease_ms: int | None,
    replace: bool,
    db_path: str | None,
    config_path: str | None,
) -> None:
    """Define a queue, creating the database if needed (prints the stored definition)."""
    given = QueueSettings(
        name=name,
        description=description,
        dedup_expr=dedup_expr,
        dedup_scope=dedup_scope,
        max_attempts=max_attempts,
        retention_days=retention_days,
        lease_ms=lease_ms,
    )
    with session(db_path, config_path, create=True) as s:
        answer = data_ops.add_queue(s, queue_id, given, replace=replace)
    _print(answer)


_QUEUE_COLUMNS = ("id", "name", "pending", "processing", "failed", "max_attempts", "dedup_expr")


@click.command("list-queues", cls=ArgsCommand)
@click.option("--json", "as_json", is_flag=True, help='Print {"queues": [...]} as JSON.')
@database_options
def list_queues(as_json: bool, db_path: str | None, config_path: str | None) -> None:
    """List queues with their pending, processing and failed counts."""
    with session(db_path, config_path) as s:
        rows = data_ops.list_queues(s)
    if as_json:
        _print({"queues": rows})
        return
    if not rows:
        click.echo("No queues.")
        return
    click.echo(
        format_table(_QUEUE_COLUMNS, [[_cell(row[c]) for c in _QUEUE_COLUMNS] for row in rows])
    )


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def format_table(header: tuple[str, ...], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart; the last is not padded."""
    table = [list(header), *rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines = []
    for line in table:
        cells = [cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=False)]
        lines.append("  ".join([*cells, line[-1]]).rstrip())
    return "\n".join(lines)


COMMANDS: list[click.Command] = [state, queue, add_queue, list_queues]
