"""Pruning and expiry: old runs, old audit entries, expired state, finished queue items past
retention, and claims whose lease ran out.

The runner calls `run_once` at start and every `stateCleanupIntervalMs`. Each step is its own
short write transaction (large deletes go in batches), so maintenance never holds the write
lock long enough to stall job scripts, and what a step did stays done if a later one fails.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta

from jeeves_runner.clock import Clock
from jeeves_runner.models import format_instant
from jeeves_runner.store.protocols import Store


@dataclass(frozen=True, slots=True)
class MaintenanceReport:
    """What one pass deleted or reset."""

    runs_deleted: int
    state_keys_deleted: int
    state_items_deleted: int
    queue_items_deleted: int
    leases_returned: int  # claimed items whose lease ran out, back to pending
    leases_dead_lettered: int  # ... that had used their attempts, now failed
    audit_entries_deleted: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Maintenance:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        run_retention_days: int,
        audit_retention_days: int = 365,
    ) -> None:
        if run_retention_days < 1:
            raise ValueError(f"run_retention_days must be at least 1, got {run_retention_days}")
        self._store = store
        self._clock = clock
        self._run_retention = timedelta(days=run_retention_days)
        self._audit_retention = timedelta(days=audit_retention_days)
        self._state = store.state
        self._queues = store.queues

    def run_once(self) -> MaintenanceReport:
        moment = self._clock.now()
        now = format_instant(moment)
        # Leases first: an item dead-lettered now gets finished_at = now, so the retention
        # prune below cannot take it in the same pass.
        leases = self._queues.expire_leases(now)
        queue_items = self._queues.prune_finished(now)
        expired = self._state.delete_expired(now)
        # prune_runs never deletes a pending or running run, however old its start.
        runs = self._store.runs.prune_runs(format_instant(moment - self._run_retention))
        audit = self._store.audit.prune(format_instant(moment - self._audit_retention))
        return MaintenanceReport(
            runs_deleted=runs,
            state_keys_deleted=expired.keys,
            state_items_deleted=expired.items,
            queue_items_deleted=queue_items,
            leases_returned=leases.returned,
            leases_dead_lettered=leases.dead_lettered,
            audit_entries_deleted=audit,
        )
