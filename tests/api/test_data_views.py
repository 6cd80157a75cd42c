"""The read-only queue and state views over real HTTP: the app served on 127.0.0.1 (the API
tier's `client` fixture) over a real SQLite file, with the clock standing where these tests
say."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from jeeves_runner.client import RunnerClient
from jeeves_runner.clock import FakeClock
from jeeves_runner.store import SqliteStore

START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
LIMIT_ERROR = {"error": "limit must be an integer from 1 to 1000"}
BAD_LIMITS = ["0", "1001", "abc", "", "5.0", "-1", " 5", "+5", "1e3", "99999999999"]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def jr(store: SqliteStore, clock: FakeClock) -> RunnerClient:
    return RunnerClient.on_store(store, clock)


@pytest.fixture
def api(client: httpx.Client) -> httpx.Client:
    """The real app (tests/api/conftest.py) on 127.0.0.1, over the same store, clock above."""
    return client


# -- queues -----------------------------------------------------------------------------------


def test_list_queues_with_counts(api: httpx.Client, jr: RunnerClient) -> None:
    assert api.get("/queues").json() == {"queues": []}
    jr.add_queue("mail", "Mail", dedup_expr="$.id", max_attempts=2, lease_ms=1000)
    for n in range(4):
        jr.enqueue("mail", {"id": n})
    first, _second = jr.dequeue("mail", 2)
    jr.fail(first.id)
    jr.fail(first.id)  # not claimed any more: no effect
    jr.enqueue("auto", 1)

    response = api.get("/queues")

    assert response.status_code == 200
    assert response.json() == {
        "queues": [
            {
                "id": "auto",
                "name": "auto",
                "description": None,
                "dedup_expr": None,
                "dedup_scope": "pending",
                "max_attempts": 1,
                "retention_days": 7,
                "lease_ms": 300_000,
                "created_at": "2026-03-02T01:00:00.000Z",
                "pending": 1,
                "processing": 0,
                "failed": 0,
            },
            {
                "id": "mail",
                "name": "Mail",
                "description": None,
                "dedup_expr": "$.id",
                "dedup_scope": "pending",
                "max_attempts": 2,
                "retention_days": 7,
                "lease_ms": 1000,
                "created_at": "2026-03-02T01:00:00.000Z",
                "pending": 3,
                "processing": 1,
                "failed": 0,
            },
        ]
    }


def test_queue_status(api: httpx.Client, jr: RunnerClient, clock: FakeClock) -> None:
    jr.add_queue("q")
    assert api.get("/queues/q/status").json() == {
        "depth": 0,
        "claimedCount": 0,
        "failedCount": 0,
        "oldestAge": None,
    }
    jr.enqueue("q", "old")
    clock.advance(2.5)
    jr.enqueue("q", "new")
    jr.enqueue("q", "doomed", priority=9)
    [doomed] = jr.dequeue("q")
    jr.fail(doomed.id, "no")
    jr.enqueue("q", "held", priority=9)
    jr.dequeue("q")
    clock.advance(1.25)

    assert api.get("/queues/q/status").json() == {
        "depth": 2,
        "claimedCount": 1,
        "failedCount": 1,
        "oldestAge": 3750,
    }


def test_unknown_queue_is_404(api: httpx.Client) -> None:
    for path in ("/queues/nope/status", "/queues/nope/peek"):
        response = api.get(path)
        assert response.status_code == 404
        assert response.json() == {"error": "Queue not found"}


def test_peek_shows_the_next_items_without_claiming(api: httpx.Client, jr: RunnerClient) -> None:
    for n in range(15):
        jr.enqueue("q", {"n": n}, priority=1 if n == 14 else 0)

    body = api.get("/queues/q/peek").json()

    assert len(body["items"]) == 10  # the default
    assert body["items"][0] == {
        "id": 15,
        "queue": "q",
        "payload": {"n": 14},
        "priority": 1,
        "attempts": 0,
        "max_attempts": 1,
        "created_at": "2026-03-02T01:00:00.000Z",
        "lease_expires_at": None,
    }
    assert [i["payload"]["n"] for i in body["items"][1:]] == list(range(9))
    assert [i["id"] for i in api.get("/queues/q/peek?limit=2").json()["items"]] == [15, 1]
    assert len(api.get("/queues/q/peek?limit=1000").json()["items"]) == 15
    assert api.get("/queues/q/status").json()["claimedCount"] == 0
    assert [i.payload["n"] for i in jr.dequeue("q", 2)] == [14, 0]


def test_peek_on_a_defined_empty_queue(api: httpx.Client, jr: RunnerClient) -> None:
    jr.add_queue("q")
    assert api.get("/queues/q/peek").json() == {"items": []}


def test_peek_limit_must_be_1_to_1000(api: httpx.Client, jr: RunnerClient) -> None:
    jr.add_queue("q")
    for limit in BAD_LIMITS:
        response = api.get("/queues/q/peek", params={"limit": limit})
        assert (response.status_code, response.json()) == (400, LIMIT_ERROR), limit


# -- state ------------------------------------------------------------------------------------


def test_namespaces_hide_expired_keys(
    api: httpx.Client, jr: RunnerClient, clock: FakeClock
) -> None:
    assert api.get("/state").json() == {"namespaces": []}
    jr.set_state("mail", "cursor", "41")
    jr.set_state("mail", "lock", "held", ttl="60s")
    jr.set_state("temp", "x", "1", ttl="60s")
    assert api.get("/state").json() == {
        "namespaces": [{"namespace": "mail", "keys": 2}, {"namespace": "temp", "keys": 1}]
    }
    clock.advance(60)
    assert api.get("/state").json() == {"namespaces": [{"namespace": "mail", "keys": 1}]}


def test_keys_of_a_namespace(api: httpx.Client, jr: RunnerClient, clock: FakeClock) -> None:
    jr.set_state("mail", "cursor", "41")
    jr.set_state("mail", "lock", "held", ttl="60s")
    jr.set_item("mail", "seen", "m1")
    jr.set_state("other", "x", "y")

    body = api.get("/state/mail").json()

    assert body == {
        "namespace": "mail",
        "total": 3,
        "keys": [
            {
                "key": "cursor",
                "value": "41",
                "expires_at": None,
                "updated_at": "2026-03-02T01:00:00.000Z",
                "item_count": 0,
            },
            {
                "key": "lock",
                "value": "held",
                "expires_at": "2026-03-02T01:01:00.000Z",
                "updated_at": "2026-03-02T01:00:00.000Z",
                "item_count": 0,
            },
            {
                "key": "seen",
                "value": None,
                "expires_at": None,
                "updated_at": "2026-03-02T01:00:00.000Z",
                "item_count": 1,
            },
        ],
    }
    limited = api.get("/state/mail", params={"limit": 1}).json()
    assert (limited["total"], [k["key"] for k in limited["keys"]]) == (3, ["cursor"])
    clock.advance(60)
    assert [k["key"] for k in api.get("/state/mail").json()["keys"]] == ["cursor", "seen"]


def test_unknown_or_fully_expired_namespace_is_404(
    api: httpx.Client, jr: RunnerClient, clock: FakeClock
) -> None:
    jr.set_state("temp", "x", "1", ttl="1s")
    live = api.get("/state/temp")
    assert live.status_code == 200
    assert [(k["key"], k["value"]) for k in live.json()["keys"]] == [("x", "1")]
    clock.advance(1)
    for path in ("/state/temp", "/state/never"):
        response = api.get(path)
        assert response.status_code == 404
        assert response.json() == {"error": "Namespace not found"}


def test_one_key_with_its_items(api: httpx.Client, jr: RunnerClient, clock: FakeClock) -> None:
    jr.set_state("feeds", "https://x.org/a b", "etag-1", ttl="1d")
    for n in range(3):
        jr.set_item("feeds", "https://x.org/a b", f"entry{n}", f"v{n}" if n else None)
        clock.advance(1)

    response = api.get("/state/feeds/https%3A%2F%2Fx.org%2Fa%20b", params={"limit": 2})

    assert response.status_code == 200
    assert response.json() == {
        "namespace": "feeds",
        "key": "https://x.org/a b",
        "value": "etag-1",
        "expires_at": "2026-03-03T01:00:00.000Z",
        "updated_at": "2026-03-02T01:00:00.000Z",
        "item_count": 3,
        "items": [
            {
                "item_key": "entry2",
                "value": "v2",
                "created_at": "2026-03-02T01:00:02.000Z",
                "updated_at": "2026-03-02T01:00:02.000Z",
            },
            {
                "item_key": "entry1",
                "value": "v1",
                "created_at": "2026-03-02T01:00:01.000Z",
                "updated_at": "2026-03-02T01:00:01.000Z",
            },
        ],
    }
    # A key holding "/" is reachable unescaped too: the rest of the path is the key.
    assert api.get("/state/feeds/https://x.org/a b").json()["value"] == "etag-1"


def test_unknown_or_expired_key_is_404(
    api: httpx.Client, jr: RunnerClient, clock: FakeClock
) -> None:
    jr.set_state("ns", "short", "v", ttl="1m")
    live = api.get("/state/ns/short")
    assert (live.status_code, live.json()["value"]) == (200, "v")
    clock.advance(60)
    for path in ("/state/ns/short", "/state/ns/never", "/state/nobody/k"):
        response = api.get(path)
        assert response.status_code == 404
        assert response.json() == {"error": "State key not found"}


def test_state_limit_must_be_1_to_1000(api: httpx.Client, jr: RunnerClient) -> None:
    jr.set_state("ns", "k", "v")
    for path in ("/state/ns", "/state/ns/k"):
        for limit in BAD_LIMITS:
            response = api.get(path, params={"limit": limit})
            assert (response.status_code, response.json()) == (400, LIMIT_ERROR), (path, limit)


def test_peek_serves_integers_beyond_64_bits_as_written(
    api: httpx.Client, jr: RunnerClient
) -> None:
    big = 2**70 + 1
    jr.enqueue("big", {"n": big})
    response = api.get("/queues/big/peek")
    assert response.status_code == 200
    assert f'"n":{big}' in response.text
