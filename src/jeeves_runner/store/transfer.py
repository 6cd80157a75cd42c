"""`migrate --to`: copy everything from a SQLite store into a PostgreSQL one.

Each backend keeps its own SQL (`sqlite/export.py` reads, `postgres/importing.py` writes);
this module only decides what goes where. Columns present on both sides are copied, so a
column one backend gained first does not stop a copy (and is reported as left behind).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from jeeves_runner.store.errors import StoreError
from jeeves_runner.store.postgres import PostgresStore, importing
from jeeves_runner.store.sqlite import SqliteStore, export

# Parents before children (foreign keys): a job before its runs, a run before its log, a key
# before its items.
TABLES = [
    "jobs",
    "job_fire_marks",
    "notify_state",
    "runs",
    "run_logs",
    "state",
    "state_items",
    "queues",
    "queue_items",
    "api_tokens",
    "audit_log",
]

# Each backend's own bookkeeping, kept by its triggers: never copied, never reported.
_BOOKKEEPING = {("jobs", "list_seq")}


class TargetNotEmptyError(StoreError):
    pass


@dataclass
class TransferReport:
    copied: dict[str, int]
    # (table, column) that the source has and the target does not: not copied.
    left_behind: list[tuple[str, str]] = field(default_factory=list)


def copy_sqlite_to_postgres(
    source: SqliteStore, target: PostgresStore, *, force: bool = False
) -> TransferReport:
    """Every row of every table, in one transaction on the target. A target that already
    holds rows is refused unless `force`, which replaces them."""
    present = importing.count_rows(target.db, TABLES)
    if not force and any(present.values()):
        held = ", ".join(f"{n} {t}" for t, n in present.items() if n)
        raise TargetNotEmptyError(
            f"{target.location} already holds data ({held}); use --force to replace it"
        )
    plan: list[tuple[str, list[str], Iterable[tuple[Any, ...]]]] = []
    left_behind: list[tuple[str, str]] = []
    for table in TABLES:
        source_columns = [
            c for c in export.table_columns(source.db, table) if (table, c) not in _BOOKKEEPING
        ]
        target_columns = set(importing.table_columns(target.db, table))
        columns = [c for c in source_columns if c in target_columns]
        left_behind += [(table, c) for c in source_columns if c not in target_columns]
        plan.append((table, columns, export.export_rows(source.db, table, columns)))
    copied = importing.import_tables(target.db, plan, replace=force)
    return TransferReport(copied=copied, left_behind=left_behind)
