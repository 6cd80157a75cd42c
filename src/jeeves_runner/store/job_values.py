"""A job as both backends store it: the values of its row for INSERT and UPDATE (the same
JSON text on either, so `migrate`'s copies compare equal), and a row read back as the API
shows it. The SQL itself stays in each backend."""

from __future__ import annotations

import json
from typing import Any

import orjson

from jeeves_runner.models import Job

# Columns holding JSON text.
JSON_COLUMNS = ("command", "args", "env", "tags", "run_on", "retry_on")


def extra_values(job: Job) -> tuple[Any, ...]:
    """command, args, env, cwd, timezone, tags, source, source_digest and the policies as
    stored."""
    return (
        json.dumps(list(job.command)) if job.command is not None else None,
        json.dumps(list(job.args)),
        json.dumps(job.env, sort_keys=True),
        job.cwd,
        job.timezone,
        json.dumps(list(job.tags)),
        job.source,
        job.source_digest,
        json.dumps(list(job.run_on)),
        job.retries,
        job.retry_delay_ms,
        job.retry_backoff,
        job.retry_max_delay_ms,
        json.dumps(list(job.retry_on)),
        job.catchup,
        job.catchup_max,
        job.catchup_window_ms,
        job.notify,
        job.notify_repeat,
        job.late_after_ms,
        job.max_duration_ms,
    )


def _fields(job: Job) -> tuple[Any, ...]:
    """The columns both statements write, between the id and the timestamps."""
    return (
        job.name,
        job.schedule,
        job.script,
        job.type.value,
        job.description,
        int(job.enabled),
        job.timeout_ms,
        job.overlap_policy.value,
        job.on_failure,
        job.on_success,
    )


def insert_values(job: Job, now: str) -> tuple[Any, ...]:
    return (job.id, *_fields(job), now, now, *extra_values(job))


def update_values(job: Job, now: str) -> tuple[Any, ...]:
    return (*_fields(job), now, *extra_values(job), job.id)


def decoded(row: dict[str, Any]) -> dict[str, Any]:
    """A job row as the API shows it: its JSON columns parsed, file bookkeeping left out."""
    row.pop("source_digest", None)  # bookkeeping of job files, not part of a job
    for name in JSON_COLUMNS:
        if row.get(name) is not None:
            row[name] = orjson.loads(row[name])
    return row
