"""auth.py: scopes by route, loopback, token names, secrets and hashes, bearer parsing."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from structlog.testing import capture_logs

from jeeves_runner.access_model import Scope, StoredToken
from jeeves_runner.auth import (
    ANONYMOUS,
    TokenGuard,
    Verdict,
    hash_secret,
    is_loopback,
    name_problem,
    new_secret,
    required_scope,
)
from jeeves_runner.store.errors import DatabaseBusyError
from jeeves_runner.store.gateway import StoreGateway


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "/jobs", Scope.READ),
        ("HEAD", "/jobs", Scope.READ),
        ("GET", "/metrics", Scope.READ),
        ("GET", "/state/ns/k", Scope.READ),
        ("GET", "/audit", Scope.ADMIN),
        ("HEAD", "/audit", Scope.ADMIN),
        ("POST", "/jobs/a/run", Scope.TRIGGER),
        ("POST", "/jobs/a/cancel", Scope.TRIGGER),
        ("POST", "/jobs/a/enable", Scope.TRIGGER),
        ("POST", "/jobs/a/disable", Scope.TRIGGER),
        ("POST", "/jobs/a/b/run", Scope.ADMIN),  # not a job route
        ("POST", "/jobs", Scope.ADMIN),
        ("PUT", "/jobs/a", Scope.ADMIN),
        ("PATCH", "/jobs/a", Scope.ADMIN),
        ("DELETE", "/jobs/a", Scope.ADMIN),
        ("GET", "/auditors", Scope.READ),
    ],
)
def test_the_scope_each_request_needs(method: str, path: str, scope: Scope) -> None:
    assert required_scope(method, path) is scope


def test_scopes_include_the_lower_ones() -> None:
    assert Scope.ADMIN.allows(Scope.TRIGGER) and Scope.ADMIN.allows(Scope.READ)
    assert Scope.TRIGGER.allows(Scope.READ) and not Scope.TRIGGER.allows(Scope.ADMIN)
    assert not Scope.READ.allows(Scope.TRIGGER)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("no-such-host.invalid", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_token_names() -> None:
    assert name_problem("prometheus") is None
    assert name_problem("ci.deploy_2-x") is None
    assert name_problem("bad name") == (
        "invalid token name 'bad name': use 1 to 64 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit"
    )
    assert name_problem("-x") is not None
    assert name_problem("x" * 65) is not None


def test_secrets_are_random_and_only_their_hash_is_kept() -> None:
    a, b = new_secret(), new_secret()
    assert a != b and a.startswith("jr_") and len(a) >= 40
    assert hash_secret(a) == hash_secret(a) != hash_secret(b)
    assert len(hash_secret(a)) == 64 and a not in hash_secret(a)


def guard(*tokens: tuple[str, Scope, str], loopback: bool = True) -> TokenGuard:
    g = TokenGuard(None, loopback=loopback)
    g.use(tuple(StoredToken(n, s, hash_secret(secret), "t", "c") for n, s, secret in tokens))
    return g


@pytest.mark.parametrize(
    ("header", "verdict"),
    [
        ("Bearer s1", Verdict("one", Scope.READ)),
        ("bearer   s2 ", Verdict("two", Scope.ADMIN)),
        ("Bearer s3", Verdict(None, None)),
        ("Basic s1", Verdict(None, None)),
        ("Bearer", Verdict(None, None)),
        ("s1", Verdict(None, None)),
        (None, Verdict(None, None)),
    ],
)
def test_verdicts(header: str | None, verdict: Verdict) -> None:
    g = guard(("one", Scope.READ, "s1"), ("two", Scope.ADMIN, "s2"))
    assert asyncio.run(g.verdict(header)) == verdict


def test_without_tokens_only_loopback_is_open() -> None:
    assert asyncio.run(guard().verdict(None)) == Verdict(ANONYMOUS, Scope.ADMIN)
    # Beyond loopback, revoking the last token must not open the API to the network.
    assert asyncio.run(guard(loopback=False).verdict(None)) == Verdict(None, None)


class _BrokenGateway:
    async def probe(self, fn: object) -> object:
        raise DatabaseBusyError()


def test_a_database_that_cannot_answer_leaves_the_known_tokens_in_force() -> None:
    g = TokenGuard(cast(StoreGateway, _BrokenGateway()), loopback=False)
    g.use((StoredToken("one", Scope.READ, hash_secret("s1"), "t", "c"),))
    with capture_logs() as logs:
        assert asyncio.run(g.verdict("Bearer s1")) == Verdict("one", Scope.READ)
        assert asyncio.run(g.verdict("Bearer s1")) == Verdict("one", Scope.READ)
    # one warning: the next look is a second later, not at every request
    assert [(e["event"], e["reason"]) for e in logs] == [
        ("cannot re-read access tokens", "The database is busy; try again")
    ]
    with pytest.raises(DatabaseBusyError):  # at start, the runner does not start without them
        asyncio.run(g.refresh(force=True))
