"""batch: many state and queue operations through one process.

A shell loop that calls `jeeves-runner state …` a thousand times pays Python's start a
thousand times; `batch` reads one JSON command per line on stdin and answers each with one
JSON line on stdout, flushed at once, so a job can keep it open as a coprocess:

    {"cmd": "state set", "namespace": "ns", "key": "k", "value": "v", "ttl": "1h"}
    {"cmd": "queue enqueue", "name": "urls", "payload": {"url": "https://…"}}

Fields are the verb's arguments and options by their names (`item_key`, `max_attempts`);
`payload` is any JSON value. The answer is exactly what the verb prints, or
`{"error": "<sentence>"}`; an error answers that line only and the batch goes on. Blank
lines are skipped. The exit code is 0 at the end of input, whatever the answers were.
"""

from __future__ import annotations

import json
import sys
from typing import IO, Any

import click

from jeeves_runner.cli import data_ops
from jeeves_runner.cli.common import ArgsCommand, CliError
from jeeves_runner.cli.data_commands import database_options, session
from jeeves_runner.cli.data_ops import DataSession
from jeeves_runner.store import StoreError
from jeeves_runner.store.errors import is_driver_error

_TEXT = "a string"
_INT = "an integer"
_ANY = "any JSON value"
# kind, required
Field = tuple[str, bool]

COMMANDS: dict[str, tuple[data_ops.Operation, dict[str, Field]]] = {
    "state get": (data_ops.state_get, {"namespace": (_TEXT, True), "key": (_TEXT, True)}),
    "state set": (
        data_ops.state_set,
        {
            "namespace": (_TEXT, True),
            "key": (_TEXT, True),
            "value": (_TEXT, True),
            "ttl": (_TEXT, False),
        },
    ),
    "state delete": (data_ops.state_delete, {"namespace": (_TEXT, True), "key": (_TEXT, True)}),
    "state items list": (
        data_ops.items_list,
        {
            "namespace": (_TEXT, True),
            "key": (_TEXT, True),
            "limit": (_INT, False),
            "order": (_TEXT, False),
        },
    ),
    "state items get": (
        data_ops.items_get,
        {"namespace": (_TEXT, True), "key": (_TEXT, True), "item_key": (_TEXT, True)},
    ),
    "state items has": (
        data_ops.items_has,
        {"namespace": (_TEXT, True), "key": (_TEXT, True), "item_key": (_TEXT, True)},
    ),
    "state items set": (
        data_ops.items_set,
        {
            "namespace": (_TEXT, True),
            "key": (_TEXT, True),
            "item_key": (_TEXT, True),
            "value": (_TEXT, False),
        },
    ),
    "state items delete": (
        data_ops.items_delete,
        {"namespace": (_TEXT, True), "key": (_TEXT, True), "item_key": (_TEXT, True)},
    ),
    "state items count": (
        data_ops.items_count,
        {"namespace": (_TEXT, True), "key": (_TEXT, True)},
    ),
    "state items prune": (
        data_ops.items_prune,
        {"namespace": (_TEXT, True), "key": (_TEXT, True), "keep": (_INT, True)},
    ),
    "queue enqueue": (
        data_ops.queue_enqueue,
        {
            "name": (_TEXT, True),
            "payload": (_ANY, True),
            "priority": (_INT, False),
            "max_attempts": (_INT, False),
        },
    ),
    "queue dequeue": (data_ops.queue_dequeue, {"name": (_TEXT, True), "count": (_INT, False)}),
    "queue done": (data_ops.queue_done, {"id": (_INT, True)}),
    "queue fail": (data_ops.queue_fail, {"id": (_INT, True), "error": (_TEXT, False)}),
}


def _arguments(request: Any) -> tuple[data_ops.Operation, dict[str, Any]]:
    """The operation and its named values, or a CliError saying what is wrong."""
    if not isinstance(request, dict):
        raise CliError('a command must be a JSON object such as {"cmd": "state get", ...}')
    cmd = request.get("cmd")
    if not isinstance(cmd, str) or cmd not in COMMANDS:
        known = ", ".join(COMMANDS)
        raise CliError(f"unknown cmd {json.dumps(cmd)}; one of: {known}")
    op, fields = COMMANDS[cmd]
    values: dict[str, Any] = {}
    for name, given in request.items():
        if name == "cmd":
            continue
        if name not in fields:
            raise CliError(f"{cmd}: unknown field {name!r}; fields: {', '.join(fields)}")
        kind, required = fields[name]
        if given is None and not required:
            continue
        if kind == _TEXT and not isinstance(given, str):
            raise CliError(f"{cmd}: {name} must be {kind}")
        if kind == _INT and (not isinstance(given, int) or isinstance(given, bool)):
            raise CliError(f"{cmd}: {name} must be {kind}")
        values[name] = given
    missing = [name for name, (_, required) in fields.items() if required and name not in values]
    if missing:
        raise CliError(f"{cmd}: missing field {missing[0]!r}")
    return op, values


def answer(s: DataSession, line: str) -> dict[str, Any]:
    """The answer to one line of input."""
    try:
        request = json.loads(line)
    except json.JSONDecodeError as exc:
        return {"error": f"not valid JSON: {exc}"}
    try:
        op, values = _arguments(request)
        return op(s, **values)
    except CliError as exc:
        return {"error": exc.message}
    except (ValueError, TypeError, StoreError) as exc:  # the client's checks, a busy file
        return {"error": str(exc)}
    except Exception as exc:
        if not is_driver_error(exc):
            raise
        return {"error": f"database error: {exc}"}


def serve(s: DataSession, lines: IO[str], out: IO[str]) -> None:
    for line in lines:
        if not line.strip():
            continue
        out.write(json.dumps(answer(s, line), ensure_ascii=False) + "\n")
        out.flush()  # the caller waits for this line before it sends the next


@click.command("batch", cls=ArgsCommand)
@database_options
def batch(db_path: str | None, config_path: str | None) -> None:
    """Run state and queue commands read from stdin, one JSON object per line, e.g.
    {"cmd": "state get", "namespace": "ns", "key": "k"}; answer each with one JSON line
    (what the verb prints, or {"error": "..."})."""
    with session(db_path, config_path) as s:
        serve(s, sys.stdin, sys.stdout)
