"""Script state as values. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StateEntry:
    namespace: str
    key: str
    value: str | None
    expires_at: str | None
    updated_at: str


@dataclass(frozen=True, slots=True)
class ExpiredState:
    """What one expiry sweep deleted."""

    keys: int
    items: int
