"""The environment a job's process gets: the runner's own, minus the secrets the runner holds
for itself. The gateway token variable is always withheld; `secretEnv` in the config names
any others (API keys the runner's service file sets for its notifier, say). A job that needs
a secret reads it from a file of its own, not from the runner's environment."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

GATEWAY_TOKEN_ENV = "OPENCLAW_GATEWAY_TOKEN"

# Withheld whatever the config says: the runner's bearer token for the gateway.
ALWAYS_DENIED: frozenset[str] = frozenset({GATEWAY_TOKEN_ENV})


def child_environment(base: Mapping[str, str], deny: Iterable[str]) -> dict[str, str]:
    """`base` without the variables named in `deny` or in `ALWAYS_DENIED`. Names match
    exactly, as the environment's own names do (case matters)."""
    denied = ALWAYS_DENIED.union(deny)
    return {name: value for name, value in base.items() if name not in denied}
