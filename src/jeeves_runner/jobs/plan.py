"""What applying a jobs folder would change: jobs added, jobs changed (field by field), and
stored jobs that no file defines. Pure: the folder as read and the stored jobs in, a plan out.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jeeves_runner.jobs.files import FileProblem, FolderRead
from jeeves_runner.models import Job

COMPARED = (
    "name",
    "schedule",
    "script",
    "command",
    "type",
    "description",
    "enabled",
    "timeout_ms",
    "overlap_policy",
    "on_failure",
    "on_success",
    "args",
    "env",
    "cwd",
    "timezone",
    "tags",
    "run_on",
    "source",
)


@dataclass(frozen=True, slots=True)
class FieldChange:
    name: str
    old: Any
    new: Any


@dataclass(slots=True)
class Plan:
    added: list[Job] = field(default_factory=list)
    changed: list[tuple[Job, list[FieldChange]]] = field(default_factory=list)
    without_file: list[str] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)
    # Files whose text changed but whose job did not (a comment): only the digest is written.
    refreshed: list[Job] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.refreshed)


def make_plan(
    folder: FolderRead, stored_ids: set[str], stored_job: Callable[[str], Job | None]
) -> Plan:
    """`stored_job` is asked only for the jobs whose file is new or changed."""
    plan = Plan(problems=list(folder.problems))
    broken = folder.broken_ids
    for job_id, job in sorted(folder.jobs.items()):
        current = stored_job(job_id) if job_id in stored_ids else None
        if current is None:
            plan.added.append(job)
            continue
        changes = [
            FieldChange(name, getattr(current, name), getattr(job, name))
            for name in COMPARED
            if getattr(current, name) != getattr(job, name)
        ]
        if changes:
            plan.changed.append((job, changes))
        elif job.source_digest != current.source_digest:
            plan.refreshed.append(job)
    defined = folder.ids
    plan.without_file = sorted(
        job_id for job_id in stored_ids if job_id not in defined and job_id not in broken
    )
    return plan


def describe(plan: Plan, prune: bool) -> list[str]:
    """The plan as lines for a person: `+` added, `~` changed, `-` without a file, `!` a file
    with an error."""
    lines = [f"+ {job.id}" for job in plan.added]
    for job, changes in plan.changed:
        for change in changes:
            lines.append(f"~ {job.id}: {change.name} {_shown(change.old)} -> {_shown(change.new)}")
    fate = "deleted" if prune else "kept (apply --prune deletes it)"
    lines += [f"- {job_id}: no file; {fate}" for job_id in plan.without_file]
    lines += [f"! {problem}" for problem in plan.problems]
    removed = len(plan.without_file) if prune else 0
    lines.append(
        f"{len(plan.added)} to add, {len(plan.changed)} to change, {removed} to delete, "
        f"{len(plan.without_file)} without a file, {len(plan.problems)} with errors"
    )
    return lines


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        value = list(value)
    if hasattr(value, "value"):  # an enum
        value = value.value
    return json.dumps(value, ensure_ascii=False)
