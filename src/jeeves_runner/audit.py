"""Audit rows written by the runner itself (not by a request or a CLI command)."""

from __future__ import annotations

import structlog

from jeeves_runner.access_model import AuditAction, AuditEntry
from jeeves_runner.clock import Clock
from jeeves_runner.models import format_instant
from jeeves_runner.store.errors import StoreError
from jeeves_runner.store.gateway import StoreGateway

log = structlog.get_logger("jeeves_runner.audit")

# Who sent the signal is not known to the process that receives it.
SIGNAL_ACTOR = "signal:SIGHUP"
LOCAL_ADDRESS = "local"


async def record_reload(
    gateway: StoreGateway,
    clock: Clock,
    config_path: str | None,
    applied: list[str],
    needs_restart: list[str],
) -> None:
    """One `config.reloaded` row: the file, what was applied, what waits for a restart. A
    database that cannot take it is logged, never raised: the reload itself happened."""
    entry = AuditEntry(
        at=format_instant(clock.now()),
        actor=SIGNAL_ACTOR,
        address=LOCAL_ADDRESS,
        action=AuditAction.CONFIG_RELOADED,
        target=config_path,
        after={"applied": applied, "needsRestart": needs_restart},
    )
    try:
        await gateway.write(lambda s: s.audit.record(entry))
    except StoreError as exc:
        log.warning("could not record the reload in the audit log", reason=str(exc))
