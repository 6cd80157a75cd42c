"""Apply a jobs folder to the store: one transaction for everything the plan changes, and no
write at all when nothing changed. Used by `jeeves-runner apply` and by the runner (at start
and when a file changes). Blocks: call it from a thread when on the event loop."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from jeeves_runner.jobs.files import read_folder
from jeeves_runner.jobs.plan import Plan, make_plan
from jeeves_runner.models import format_instant
from jeeves_runner.store.protocols import Store


def plan_folder(store: Store, folder: Path, now: datetime) -> Plan:
    sources = store.jobs.job_sources()
    return make_plan(read_folder(folder, now, sources), set(sources), store.jobs.get_job)


def apply_folder(store: Store, folder: Path, now: datetime, *, prune: bool) -> Plan:
    plan = plan_folder(store, folder, now)
    delete = plan.without_file if prune else []
    if plan.empty and not delete:
        return plan
    store.jobs.apply_jobs(plan.added, [job for job, _ in plan.changed], delete, format_instant(now))
    return plan
