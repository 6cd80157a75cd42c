"""StateStore contract: expiry as a read filter, items under a key, the operator views, and
the maintenance sweep, run once per backend (see conftest.py)."""

from __future__ import annotations

import pytest

from jeeves_runner.store.protocols import StateStore, Store

T0 = "2026-03-02T01:00:00.000Z"
T1 = "2026-03-02T01:00:00.001Z"
T2 = "2026-03-02T01:00:00.002Z"
LATER = "2026-03-02T02:00:00.000Z"


@pytest.fixture
def state(store: Store) -> StateStore:
    return store.state


def test_set_and_get_round_trip(state: StateStore) -> None:
    state.set("ns", "k", "v", None, T0)
    assert state.get("ns", "k", T0) == "v"
    assert state.get("ns", "other", T0) is None
    assert state.get("other", "k", T0) is None


def test_a_value_is_live_until_the_instant_it_expires(state: StateStore) -> None:
    state.set("ns", "k", "v", T1, T0)
    assert state.get("ns", "k", T0) == "v"
    assert state.get("ns", "k", T1) is None  # at the expiry instant it is gone
    assert state.get_entry("ns", "k", T2) is None


def test_set_without_expiry_clears_an_earlier_one(state: StateStore) -> None:
    state.set("ns", "k", "v", T1, T0)
    state.set("ns", "k", "w", None, T0)
    entry = state.get_entry("ns", "k", LATER)
    assert entry is not None
    assert (entry.value, entry.expires_at) == ("w", None)


def test_items_of_an_expired_key_are_missing_and_do_not_come_back(state: StateStore) -> None:
    state.set("ns", "k", "v", T1, T0)
    state.set_item("ns", "k", "a", "1", T0)
    assert state.has_item("ns", "k", "a", T0) is True
    assert not state.has_item("ns", "k", "a", T1)
    assert state.get_item("ns", "k", "a", T1) is None
    assert state.count_items("ns", "k", T1) == 0
    assert state.list_item_keys("ns", "k", T1, None, descending=True) == []
    # Setting the expired key again starts an empty collection.
    state.set("ns", "k", "fresh", None, T2)
    assert state.count_items("ns", "k", T2) == 0


def test_set_item_on_an_expired_key_makes_a_fresh_parent(state: StateStore) -> None:
    state.set("ns", "k", "old", T1, T0)
    state.set_item("ns", "k", "old-item", None, T0)
    state.set_item("ns", "k", "new-item", None, T2)
    entry = state.get_entry("ns", "k", T2)
    assert entry is not None
    assert (entry.value, entry.expires_at) == (None, None)
    assert state.list_item_keys("ns", "k", T2, None, descending=True) == ["new-item"]


def test_delete_reports_only_a_live_value(state: StateStore) -> None:
    state.set("ns", "live", "v", None, T0)
    state.set("ns", "dead", "v", T1, T0)
    assert state.delete("ns", "live", T2) is True
    assert state.delete("ns", "dead", T2) is False
    assert state.delete("ns", "never", T2) is False
    assert state.get_entry("ns", "dead", T0) is None  # the expired row went too


def test_delete_takes_the_items_with_it(state: StateStore) -> None:
    state.set_item("ns", "k", "a", None, T0)
    state.delete("ns", "k", T0)
    state.set("ns", "k", "again", None, T0)
    assert state.count_items("ns", "k", T0) == 0


def test_item_order_is_by_last_write_with_insertion_breaking_ties(state: StateStore) -> None:
    state.set_item("ns", "k", "first", None, T0)
    state.set_item("ns", "k", "second", None, T0)  # same millisecond as "first"
    state.set_item("ns", "k", "third", None, T1)
    state.set_item("ns", "k", "first", "touched", T2)  # rewriting makes it the newest
    assert state.list_item_keys("ns", "k", T2, None, descending=True) == [
        "first",
        "third",
        "second",
    ]
    assert state.list_item_keys("ns", "k", T2, 2, descending=False) == ["second", "third"]


def test_prune_keeps_the_newest(state: StateStore) -> None:
    for i, at in enumerate((T0, T1, T2)):
        state.set_item("ns", "k", f"i{i}", None, at)
    assert state.prune_items("ns", "k", 1, T2) == 2
    assert state.list_item_keys("ns", "k", T2, None, descending=True) == ["i2"]
    assert state.prune_items("ns", "k", 5, T2) == 0


def test_views_show_live_keys_only(state: StateStore) -> None:
    state.set("a", "k1", "v1", None, T0)
    state.set("a", "k2", "v2", T1, T0)
    state.set("b", "gone", "v", T1, T0)
    state.set_item("a", "k1", "x", "1", T0)
    assert state.namespaces(T0) == [{"namespace": "a", "keys": 2}, {"namespace": "b", "keys": 1}]
    assert state.namespaces(T2) == [{"namespace": "a", "keys": 1}]
    assert state.count_keys("a", T2) == 1
    assert state.list_keys("a", T2, 10) == [
        {"key": "k1", "value": "v1", "expires_at": None, "updated_at": T0, "item_count": 1}
    ]
    assert state.list_items("a", "k1", T2, 10) == [
        {"item_key": "x", "value": "1", "created_at": T0, "updated_at": T0}
    ]


def test_delete_expired_counts_keys_and_items_across_batches(state: StateStore) -> None:
    for i in range(7):
        state.set("ns", f"dead{i}", "v", T1, T0)
        state.set_item("ns", f"dead{i}", "item", None, T0)
        state.set_item("ns", f"dead{i}", "item2", None, T0)
    state.set("ns", "alive", "v", LATER, T0)
    state.set_item("ns", "alive", "item", None, T0)
    state.set("ns", "forever", "v", None, T0)

    swept = state.delete_expired(T2, batch=3)

    assert (swept.keys, swept.items) == (7, 14)
    assert [k["key"] for k in state.list_keys("ns", T2, 100)] == ["alive", "forever"]
    assert state.count_items("ns", "alive", T2) == 1
    assert state.delete_expired(T2).keys == 0


def test_prune_keeps_the_newest_by_write_order_within_one_millisecond(
    state: StateStore,
) -> None:
    for name in ("a", "b", "c", "d", "e"):
        state.set_item("ns", "k", name, None, T0)  # all in one millisecond
    state.set_item("ns", "k", "b", "rewritten", T0)  # rewriting keeps its place
    state.set_item("ns", "k", "z", None, T1)
    assert state.prune_items("ns", "k", 3, T1) == 3
    assert state.list_item_keys("ns", "k", T1, None, descending=True) == ["z", "e", "d"]
    assert state.prune_items("ns", "k", 0, T1) == 3
    assert state.count_items("ns", "k", T1) == 0
    assert state.prune_items("ns", "k", 0, T1) == 0
    assert state.prune_items("ns", "missing", 0, T1) == 0
