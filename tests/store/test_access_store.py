"""TokenStore and AuditStore on a real SQLite file, and the pending summary /metrics reads."""

from __future__ import annotations

import pytest

from jeeves_runner.access_model import (
    AuditAction,
    AuditEntry,
    Scope,
    StoredToken,
    TokenExistsError,
)
from jeeves_runner.store import SqliteStore

T0 = "2026-03-02T01:00:00.000Z"
T1 = "2026-03-02T01:00:01.000Z"
T2 = "2026-03-02T01:00:02.000Z"


def token(name: str, scope: Scope = Scope.READ, digest: str | None = None) -> StoredToken:
    return StoredToken(name, scope, digest or f"hash-of-{name}", T0, "cli:alice")


def test_tokens_round_trip_by_name(store: SqliteStore) -> None:
    store.tokens.create_token(token("prometheus", Scope.READ))
    store.tokens.create_token(token("deploy", Scope.ADMIN))
    assert [t.name for t in store.tokens.list_tokens()] == ["deploy", "prometheus"]
    assert store.tokens.get_token("deploy") == token("deploy", Scope.ADMIN)
    assert store.tokens.count_tokens() == 2


def test_a_taken_name_is_refused_with_its_message(store: SqliteStore) -> None:
    store.tokens.create_token(token("ci"))
    with pytest.raises(TokenExistsError) as caught:
        store.tokens.create_token(token("ci", digest="another"))
    assert str(caught.value) == "A token named 'ci' already exists"
    assert store.tokens.count_tokens() == 1


def test_revoke_removes_the_token_and_says_whether_it_existed(store: SqliteStore) -> None:
    store.tokens.create_token(token("ci"))
    assert store.tokens.revoke_token("ci") is True
    assert store.tokens.revoke_token("ci") is False
    assert store.tokens.get_token("ci") is None
    assert store.tokens.list_tokens() == []


def test_audit_entries_come_back_newest_first_with_before_and_after(store: SqliteStore) -> None:
    store.audit.record(AuditEntry(T0, "cli:alice", "local", AuditAction.JOB_ADDED, "a"))
    store.audit.record(
        AuditEntry(
            T1,
            "deploy",
            "127.0.0.1",
            AuditAction.JOB_EDITED,
            "a",
            before={"schedule": "* * * * *"},
            after={"schedule": "0 * * * *"},
        )
    )
    entries = store.audit.list_entries(10)
    assert [e["action"] for e in entries] == ["job.edited", "job.added"]
    assert entries[0] == {
        "id": 2,
        "at": T1,
        "actor": "deploy",
        "address": "127.0.0.1",
        "action": "job.edited",
        "target": "a",
        "before": {"schedule": "* * * * *"},
        "after": {"schedule": "0 * * * *"},
    }
    assert entries[1]["before"] is None and entries[1]["after"] is None


def test_audit_limit_and_since(store: SqliteStore) -> None:
    for at in (T0, T1, T2):
        store.audit.record(AuditEntry(at, "x", "local", AuditAction.JOB_ENABLED, "a"))
    assert [e["at"] for e in store.audit.list_entries(2)] == [T2, T1]
    assert [e["at"] for e in store.audit.list_entries(10, since=T1)] == [T2, T1]


def test_audit_prune_deletes_only_older_entries(store: SqliteStore) -> None:
    for at in (T0, T1, T2):
        store.audit.record(AuditEntry(at, "x", "local", AuditAction.JOB_ENABLED, "a"))
    assert store.audit.prune(T2, batch=1) == 2
    assert [e["at"] for e in store.audit.list_entries(10)] == [T2]


def test_pending_summary_counts_and_ages_each_queue(store: SqliteStore) -> None:
    store.queues.enqueue("mail", '{"n": 1}', 0, None, T0)
    store.queues.enqueue("mail", '{"n": 2}', 0, None, T1)
    store.queues.enqueue("idle", '{"n": 3}', 0, None, T1)
    [claimed] = store.queues.claim("idle", 1, T2)
    assert claimed is not None
    assert store.queues.pending_summary() == [("idle", 0, None), ("mail", 2, T0)]
