"""Every row of a SQLite store, table by table, as `migrate --to` copies them to another
backend. Rows come out in insertion order (rowid), which the target keeps where order
matters (state items written in one millisecond)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from jeeves_runner.store.sqlite.database import Database

# Tables without a rowid (WITHOUT ROWID) come out in their primary key's order.
_ORDER = {"run_logs": "run_id, seq"}


def table_columns(db: Database, table: str) -> list[str]:
    """The table's columns in their order; empty when the table does not exist."""
    return [str(row[1]) for row in db.connection().execute(f"PRAGMA table_info({table})")]


def count_rows(db: Database, table: str) -> int:
    return int(db.connection().execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def export_rows(db: Database, table: str, columns: list[str]) -> Iterator[tuple[Any, ...]]:
    """`columns` of every row of `table`, oldest first. `table` and `columns` come from
    `table_columns`, never from input."""
    names = ", ".join(columns)
    order = _ORDER.get(table, "rowid")
    cur = db.connection().execute(f"SELECT {names} FROM {table} ORDER BY {order}")
    while rows := cur.fetchmany(5000):
        yield from (tuple(row) for row in rows)
