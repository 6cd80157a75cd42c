"""Apply a jobs folder to the store: one transaction for everything the plan changes, and no
write at all when nothing changed. Used by `jeeves-runner apply` and by the runner (at start
and when a file changes). Blocks: call it from a thread when on the event loop."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from jeeves_runner.config import job_destination_problem
from jeeves_runner.jobs.files import FileProblem, read_folder
from jeeves_runner.jobs.plan import Plan, make_plan
from jeeves_runner.models import format_instant
from jeeves_runner.store.protocols import Store


def plan_folder(
    store: Store, folder: Path, now: datetime, webhook_names: list[str] | None = None
) -> Plan:
    """`webhook_names`: the configured webhooks; a new or changed file whose on_failure or
    on_success names another `webhook:NAME` is an error of that file (its job stays as it
    was), as the API and the CLI refuse such a job. None: not checked."""
    sources = store.jobs.job_sources()
    read = read_folder(folder, now, sources)
    if webhook_names is not None:
        for job_id, job in list(read.jobs.items()):
            problem = job_destination_problem(job.on_failure, job.on_success, webhook_names)
            if problem is not None:
                del read.jobs[job_id]
                read.problems.append(FileProblem(job.source or job_id, None, problem, job_id))
    return make_plan(read, set(sources), store.jobs.get_job)


def apply_folder(
    store: Store,
    folder: Path,
    now: datetime,
    *,
    prune: bool,
    webhook_names: list[str] | None = None,
) -> Plan:
    plan = plan_folder(store, folder, now, webhook_names)
    delete = plan.without_file if prune else []
    if plan.empty and not delete:
        return plan
    store.jobs.apply_jobs(plan.added, [job for job, _ in plan.changed], delete, format_instant(now))
    return plan
