"""Access tokens: making them, checking them, and which scope each request needs.

A token is a random secret shown once; the store keeps only its SHA-256. The secrets are 256
random bits, so a fast hash is enough: nobody can guess one to match a hash.

Checking costs no database call per request: the guard keeps the token table in memory and
re-reads it only when the database moved, looking at most once per `REFRESH_S`. A token
revoked from the CLI (another process) therefore stops working within that second.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import re
import secrets
import socket
import time
from dataclasses import dataclass

import structlog

from jeeves_runner.access_model import Scope, StoredToken
from jeeves_runner.store.errors import StoreError
from jeeves_runner.store.gateway import StoreGateway
from jeeves_runner.store.protocols import Store

log = structlog.get_logger("jeeves_runner.auth")

TOKEN_PREFIX = "jr_"
REFRESH_S = 1.0
ANONYMOUS = "anonymous"

# `compare_digest` by name in this module, so a test can see it is what compares.
compare_digest = hmac.compare_digest

_TRIGGER_PATHS = re.compile(r"^/jobs/[^/]+/(run|cancel|enable|disable)$|^/runs/[^/]+/cancel$")
_TRIGGER_PATCHES = re.compile(r"^/jobs/[^/]+/(enable|disable)$")
_READ_METHODS = frozenset({"GET", "HEAD"})
_ADMIN_READS = ("/audit",)
_ADMIN_READ_PREFIXES = tuple(p + "/" for p in _ADMIN_READS)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def name_problem(name: str) -> str | None:
    """None for a usable token name, else why not."""
    if _NAME.match(name):
        return None
    return (
        f"invalid token name {name!r}: use 1 to 64 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit"
    )


def required_scope(method: str, path: str) -> Scope:
    """read: every GET (and HEAD) but the audit log; trigger: run, cancel, enable and
    disable a job; admin: everything else, present and future."""
    if method in _READ_METHODS:
        if path in _ADMIN_READS or path.startswith(_ADMIN_READ_PREFIXES):
            return Scope.ADMIN
        return Scope.READ
    if method == "POST" and _TRIGGER_PATHS.match(path):
        return Scope.TRIGGER
    if method == "PATCH" and _TRIGGER_PATCHES.match(path):
        return Scope.TRIGGER  # enable and disable, also as PATCH
    return Scope.ADMIN


def is_loopback(host: str) -> bool:
    """True when every address `host` names is a loopback address. Resolves names (at start
    only: it may block)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(
        ipaddress.ip_address(str(a).split("%")[0]).is_loopback for a in addresses
    )


class InsecureBindError(Exception):
    """Listening beyond loopback with no token would let anyone on the network run jobs."""

    def __init__(self, host: str) -> None:
        super().__init__(
            f"refusing to listen on {host} without an access token: anyone who can reach it "
            "could run any job; create one first with "
            "'jeeves-runner token create NAME --scope admin -c CONFIG'"
        )
        self.host = host


@dataclass(frozen=True, slots=True)
class Verdict:
    """Who a request is (a token name, or ANONYMOUS when none is needed) and what it may do;
    `name` None means no valid token was given where one is needed."""

    name: str | None
    scope: Scope | None


class TokenGuard:
    def __init__(self, gateway: StoreGateway | None, *, loopback: bool) -> None:
        self._gateway = gateway
        self.loopback = loopback
        self._tokens: tuple[StoredToken, ...] = ()
        self._version: int | None = None
        self._checked = -REFRESH_S
        self._lock = asyncio.Lock()

    @classmethod
    async def start(cls, gateway: StoreGateway, host: str) -> TokenGuard:
        """The guard for a server on `host`. Raises InsecureBindError for a host beyond
        loopback while no token exists."""
        guard = cls(gateway, loopback=await asyncio.to_thread(is_loopback, host))
        await guard.refresh(force=True)
        if not guard.loopback and not guard._tokens:
            raise InsecureBindError(host)
        return guard

    @property
    def tokens(self) -> tuple[StoredToken, ...]:
        return self._tokens

    def use(self, tokens: tuple[StoredToken, ...]) -> None:
        """Replace the known tokens (tests; a guard without a store)."""
        self._tokens = tokens

    async def refresh(self, *, force: bool = False) -> None:
        gateway = self._gateway
        if gateway is None:
            return
        if not force and time.monotonic() - self._checked < REFRESH_S:
            return
        async with self._lock:
            if not force and time.monotonic() - self._checked < REFRESH_S:
                return  # another request refreshed while we waited
            try:
                known = None if force else self._version

                def look(store: Store) -> tuple[int, list[StoredToken] | None]:
                    # One trip to the probe thread: the version, and the tokens only when it
                    # moved since the last look.
                    version = store.data_version()
                    return version, None if version == known else store.tokens.list_tokens()

                version, tokens = await gateway.probe(look)
                if tokens is not None:
                    self._tokens = tuple(tokens)
                    self._version = version
            except StoreError as exc:
                if force:
                    raise
                # A busy or failing database must not turn every request into an error:
                # the tokens known a moment ago stay in force until it answers again.
                log.warning("cannot re-read access tokens", reason=str(exc))
            self._checked = time.monotonic()

    async def verdict(self, authorization: str | None) -> Verdict:
        await self.refresh()
        tokens = self._tokens
        if not tokens and self.loopback:
            return Verdict(ANONYMOUS, Scope.ADMIN)  # open, as the contract's clients expect
        secret = _bearer(authorization)
        if secret is None:
            return Verdict(None, None)
        return self.match(secret)

    def match(self, secret: str) -> Verdict:
        """The token whose hash equals the secret's, compared in constant time against every
        stored hash (no early exit), so timing tells nothing about which or how close."""
        presented = hash_secret(secret)
        found: StoredToken | None = None
        for token in self._tokens:
            if compare_digest(token.token_hash, presented):
                found = token
        if found is None:
            return Verdict(None, None)
        return Verdict(found.name, found.scope)


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    kind, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if kind.lower() != "bearer" or not value:
        return None
    return value
