"""The statements that must stay cheap at scale use their indexes (EXPLAIN QUERY PLAN), so
a later edit that quietly turns one into a scan or a sort fails here, not in production."""

from __future__ import annotations

import re

from jeeves_runner.store import SqliteStore
from jeeves_runner.store.sqlite import jobs, queues, runs, state

STATEMENT = re.compile(r"\s*(SELECT|INSERT|UPDATE|DELETE)\b")


def plan(store: SqliteStore, sql: str, params: tuple[object, ...]) -> list[str]:
    rows = store.db.connection().execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    return [str(row[3]) for row in rows]


def test_pruning_runs_range_scans_the_finished_at_index(store: SqliteStore) -> None:
    steps = plan(store, runs._PRUNE, ("2026-01-01T00:00:00.000Z", 10))
    assert "SEARCH runs USING INDEX runs_finished_at (finished_at<?)" in steps
    assert "SCAN runs" not in steps


def test_listing_items_reads_the_order_index_without_sorting(store: SqliteStore) -> None:
    for sql in (state._LIST_ITEMS, state._ITEM_KEYS_DESC, state._ITEM_KEYS_ASC):
        steps = plan(store, sql, ("ns", "k", "ns", "k", "now", 10))
        assert "SEARCH state_items USING INDEX state_items_order (namespace=? AND key=?)" in steps
        assert not any("TEMP B-TREE" in step for step in steps), steps


def test_pruning_items_deletes_one_range_of_the_order_index(store: SqliteStore) -> None:
    cutoff = plan(store, state._PRUNE_CUTOFF, ("ns", "k", 10))
    assert cutoff == [
        "SEARCH state_items USING COVERING INDEX state_items_order (namespace=? AND key=?)"
    ]
    delete = plan(store, state._PRUNE_ITEMS, ("ns", "k", "t", 1))
    assert delete == [
        "SEARCH state_items USING COVERING INDEX state_items_order "
        "(namespace=? AND key=? AND updated_at<?)"
    ]


def test_every_index_is_used_by_some_statement(store: SqliteStore) -> None:
    conn = store.db.connection()
    # A unique index is a constraint first (one row per scheduled instant): it need not serve
    # a query.
    indexes = {
        str(r[0])
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            "AND sql NOT LIKE 'CREATE UNIQUE INDEX%'"
        )
    }
    used: set[str] = set()
    for module in (jobs, runs, state, queues):
        for name, sql in vars(module).items():
            if not (name.startswith("_") and isinstance(sql, str) and STATEMENT.match(sql)):
                continue
            named = re.findall(r":(\w+)", sql)
            params = {p: None for p in named} if named else (None,) * sql.count("?")
            for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params):
                used.update(word for word in str(row[3]).split() if word in indexes)
    assert indexes - used == set()
