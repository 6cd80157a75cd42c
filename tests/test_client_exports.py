"""The client library's public surface, pinned: job scripts in the field import these names and
call these methods with these parameter names, so a change here must be deliberate."""

from __future__ import annotations

import inspect

import jeeves_runner.client as client

EXPORTED = [
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

METHODS = {
    "add_queue": "(self, queue, name=None, *, description=None, dedup_expr=None, "
    "dedup_scope=<DedupScope.PENDING: 'pending'>, max_attempts=1, retention_days=7, "
    "lease_ms=300000, replace=False)",
    "close": "(self)",
    "count_items": "(self, namespace, key)",
    "delete_item": "(self, namespace, key, item_key)",
    "delete_state": "(self, namespace, key)",
    "dequeue": "(self, queue, count=1)",
    "done": "(self, item_id)",
    "enqueue": "(self, queue, payload, priority=0, max_attempts=None)",
    "fail": "(self, item_id, error=None)",
    "get_item": "(self, namespace, key, item_key)",
    "get_queue": "(self, queue)",
    "get_state": "(self, namespace, key)",
    "has_item": "(self, namespace, key, item_key)",
    "list_item_keys": "(self, namespace, key, limit=None, order='desc')",
    "list_queues": "(self)",
    "on_store": "(store, clock=None)",
    "prune_items": "(self, namespace, key, keep)",
    "set_item": "(self, namespace, key, item_key, value=None)",
    "set_state": "(self, namespace, key, value, ttl=None)",
}


def _bare(signature: inspect.Signature) -> str:
    # Parameter names, kinds and defaults; annotations are checked by mypy, not here.
    return str(
        signature.replace(
            parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
            return_annotation=inspect.Signature.empty,
        )
    )


def test_exported_names() -> None:
    assert client.__all__ == EXPORTED
    for name in EXPORTED:
        assert getattr(client, name) is not None, name


def test_client_methods_and_their_parameters() -> None:
    public = {
        name: member
        for name, member in inspect.getmembers(client.RunnerClient)
        if not name.startswith("_") and callable(member)
    }
    assert sorted(public) == sorted(METHODS)
    for name, expected in METHODS.items():
        assert _bare(inspect.signature(public[name])) == expected, name


def test_constructor_and_properties() -> None:
    assert _bare(inspect.signature(client.RunnerClient.__init__)) == (
        "(self, db_path=None, *, clock=None)"
    )
    assert isinstance(inspect.getattr_static(client.RunnerClient, "db_path"), property)
    assert client.DB_PATH_ENV == "JR_DB_PATH"


def test_queue_item_fields() -> None:
    assert list(inspect.signature(client.QueueItem).parameters) == [
        "id",
        "queue",
        "payload",
        "priority",
        "attempts",
        "max_attempts",
        "created_at",
        "lease_expires_at",
    ]
    assert [s.value for s in client.ItemStatus] == ["pending", "processing", "done", "failed"]
    assert [s.value for s in client.DedupScope] == ["pending", "all"]
