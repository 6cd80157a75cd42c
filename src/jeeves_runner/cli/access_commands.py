"""token create|list|revoke, audit: who may use the API, and what was changed.

Tokens and the audit log live in the database, so these work with the runner stopped or
running (a running runner sees a new or revoked token within a second).
"""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime
from typing import Any

import click

from jeeves_runner.access_model import AuditAction, AuditEntry, Scope, StoredToken, TokenExistsError
from jeeves_runner.auth import hash_secret, name_problem, new_secret
from jeeves_runner.cli.common import CliError, config_option, load, opened_store
from jeeves_runner.models import format_instant
from jeeves_runner.store.protocols import Store

LOCAL_ADDRESS = "local"


def cli_actor() -> str:
    """`cli:<os user>`: who a change made from this machine's command line is by."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"


def record_cli(
    store: Store,
    action: AuditAction,
    target: str | None,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """One audit row for a change a CLI command just made."""
    now = format_instant(datetime.now(UTC))
    store.audit.record(AuditEntry(now, cli_actor(), LOCAL_ADDRESS, action, target, before, after))


@click.group()
def token() -> None:
    """Create, list and revoke API access tokens."""


@token.command("create")
@click.argument("name")
@click.option(
    "--scope",
    type=click.Choice([s.value for s in Scope]),
    required=True,
    help="read: GETs; trigger: + run, cancel, enable, disable; admin: everything.",
)
@config_option
def create_token(name: str, scope: str, config_path: str | None) -> None:
    """Make a token; print its secret (on stdout, alone) this one time."""
    problem = name_problem(name)
    if problem is not None:
        raise CliError(problem)
    secret = new_secret()
    stored = StoredToken(
        name=name,
        scope=Scope(scope),
        token_hash=hash_secret(secret),
        created_at=format_instant(datetime.now(UTC)),
        created_by=cli_actor(),
    )
    # May make the database: a token is what a runner beyond loopback needs before its
    # first start.
    with opened_store(load(config_path).db_location, create=True) as store:
        try:
            store.tokens.create_token(stored)
        except TokenExistsError as exc:
            raise CliError(str(exc)) from None
        record_cli(store, AuditAction.TOKEN_CREATED, name, after={"scope": scope})
    click.echo(f"Created token '{name}' (scope {scope}). It is shown only now:", err=True)
    click.echo(secret)


@token.command("list")
@config_option
def list_tokens(config_path: str | None) -> None:
    """Name, scope, when and by whom each token was made (never the secret)."""
    with opened_store(load(config_path).db_location) as store:
        tokens = store.tokens.list_tokens()
    if not tokens:
        click.echo("No tokens: the API answers anyone on loopback and refuses other addresses.")
        return
    width = max(len(t.name) for t in tokens)
    for t in tokens:
        click.echo(f"{t.name:<{width}}  {t.scope.value:<7}  {t.created_at}  {t.created_by}")


@token.command("revoke")
@click.argument("name")
@config_option
def revoke_token(name: str, config_path: str | None) -> None:
    """Delete a token; requests carrying it are refused from then on."""
    with opened_store(load(config_path).db_location) as store:
        existing = store.tokens.get_token(name)
        if existing is None or not store.tokens.revoke_token(name):
            raise CliError(f"no token named '{name}'")
        record_cli(store, AuditAction.TOKEN_REVOKED, name, before={"scope": existing.scope.value})
    click.echo(f"Revoked token '{name}'.")


def _since(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            raise ValueError(text)
        return format_instant(moment)
    except (ValueError, OverflowError):
        raise CliError(
            f"--since must be an ISO 8601 instant with a zone, such as 2026-03-02T01:03:00Z, "
            f"got {text!r}"
        ) from None


@click.command("audit")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@click.option("--since", default=None, help="Only entries at or after this ISO 8601 instant.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@config_option
def audit(limit: int, since: str | None, as_json: bool, config_path: str | None) -> None:
    """Changes, newest first: when, who, from where, what."""
    after = _since(since)
    with opened_store(load(config_path).db_location) as store:
        entries = store.audit.list_entries(limit, after)
    if not entries:
        if not as_json:
            click.echo("No audit entries.")
        return
    for e in entries:
        if as_json:
            click.echo(json.dumps(e, ensure_ascii=False))
            continue
        line = f"{e['at']}  {e['actor']}  {e['address']}  {e['action']}"
        if e["target"] is not None:
            line += f"  {e['target']}"
        if e["before"] is not None or e["after"] is not None:
            line += f"  {_compact(e['before'])} -> {_compact(e['after'])}"
        click.echo(line)


def _compact(value: dict[str, Any] | None) -> str:
    return "-" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


COMMANDS = [token, audit]
