"""Values shared by the store, auth and the audit log: token scopes, stored tokens, audit
entries. No I/O here."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Scope(enum.StrEnum):
    """What a token may do. Each scope includes the ones before it."""

    READ = "read"  # GET and HEAD
    TRIGGER = "trigger"  # + run, cancel, enable, disable
    ADMIN = "admin"  # everything

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Scope) -> bool:
        return self.rank >= needed.rank


_RANKS = {Scope.READ: 0, Scope.TRIGGER: 1, Scope.ADMIN: 2}


class TokenExistsError(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"A token named '{name}' already exists")
        self.name = name


@dataclass(frozen=True, slots=True)
class StoredToken:
    """A token as kept: its name, scope and the SHA-256 of its secret (never the secret)."""

    name: str
    scope: Scope
    token_hash: str
    created_at: str
    created_by: str


class AuditAction(enum.StrEnum):
    JOB_ADDED = "job.added"
    JOB_EDITED = "job.edited"
    JOB_REMOVED = "job.removed"
    JOB_ENABLED = "job.enabled"
    JOB_DISABLED = "job.disabled"
    RUN_TRIGGERED = "run.triggered"
    RUN_CANCELLED = "run.cancelled"
    TOKEN_CREATED = "token.created"
    TOKEN_REVOKED = "token.revoked"
    CONFIG_RELOADED = "config.reloaded"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One change: when, who (a token name or `cli:<os user>`), from where (an address, or
    `local` for the CLI), what, and for edits the values before and after."""

    at: str
    actor: str
    address: str
    action: AuditAction
    target: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
