"""Checks on a job definition before it is stored. Pure: no database, no clock."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from jeeves_runner.execution.executor import SCRIPT_EXTENSIONS
from jeeves_runner.models import Job, JobType, OverlapPolicy
from jeeves_runner.scheduling.cron import InvalidSchedule, parse

JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")
JOB_ID_MAX = 128
# The sentence `next-runs` prints for such a schedule; add-job, the API and files say the same.
NEVER_FIRES = "This schedule never fires."
PROMPT_FILE_EXTENSIONS = (".md", ".txt")


class JobRuleError(ValueError):
    """One sentence saying which field is wrong and why."""


def check_job_id(job_id: str) -> str:
    if not job_id:
        raise JobRuleError("id: must not be empty")
    # fullmatch, not match: with `$`, match() would accept an id ending in a newline.
    if not JOB_ID_PATTERN.fullmatch(job_id):
        raise JobRuleError(f"id: {job_id!r} may hold only letters, digits, '-', '_' and '.'")
    if len(job_id) > JOB_ID_MAX:
        raise JobRuleError(f"id: must be at most {JOB_ID_MAX} characters, got {len(job_id)}")
    if job_id in (".", ".."):
        # Ids end up in URL paths and file names, where these two mean folders.
        raise JobRuleError(f"id: {job_id!r} is not allowed")
    return job_id


def check_schedule(schedule: str, now: datetime | None = None) -> str:
    """A valid expression; with `now`, also one that fires at least once after it (in UTC:
    a schedule that never fires, never fires in any zone)."""
    try:
        parsed = parse(schedule)
    except InvalidSchedule as exc:
        raise JobRuleError(f"schedule: {exc}") from None
    if now is not None and parsed.next_after(now, UTC) is None:
        raise JobRuleError(f"schedule: {NEVER_FIRES}")
    return schedule


def resolve_script(script: str, job_type: JobType, cwd: Path) -> str:
    """Script jobs: an existing file, stored as an absolute path. Session jobs: prompt text,
    or a .md/.txt file that must exist."""
    try:
        return _resolve_script(script, job_type, cwd)
    except OSError as exc:  # a folder on the way we may not search, a name too long, ...
        raise JobRuleError(f"script: cannot check {script!r} ({exc.strerror or exc})") from None


def _resolve_script(script: str, job_type: JobType, cwd: Path) -> str:
    if not script.strip():
        raise JobRuleError("script: must not be empty")
    if job_type is JobType.SESSION:
        lowered = script.lower()
        if lowered.endswith(SCRIPT_EXTENSIONS):
            raise JobRuleError(
                f"script: a session job takes prompt text or a .md/.txt file, not {script!r}"
            )
        if lowered.endswith(PROMPT_FILE_EXTENSIONS) and "\n" not in script:
            path = _absolute(script, cwd)
            if not path.is_file():
                raise JobRuleError(f"script: prompt file {path} does not exist")
            return str(path)
        return script
    path = _absolute(script, cwd)
    if not path.exists():
        raise JobRuleError(f"script: {path} does not exist")
    if not path.is_file():
        raise JobRuleError(f"script: {path} is not a file")
    return str(path)


def _absolute(script: str, cwd: Path) -> Path:
    path = Path(script).expanduser()
    return path if path.is_absolute() else (cwd / path).resolve()


def build_job(
    *,
    job_id: str,
    name: str,
    schedule: str,
    script: str,
    job_type: str = "script",
    description: str | None = None,
    timeout_ms: int | None = None,
    overlap: str = "skip",
    on_failure: str | None = None,
    on_success: str | None = None,
    enabled: bool = True,
    cwd: Path,
    now: datetime,
) -> Job:
    check_job_id(job_id)
    if not name.strip():
        raise JobRuleError("name: must not be empty")
    try:
        kind = JobType(job_type)
    except ValueError:
        raise JobRuleError(f"type: must be script or session, got {job_type!r}") from None
    try:
        policy = OverlapPolicy(overlap)
    except ValueError:
        raise JobRuleError(f"overlap: must be skip, queue or allow, got {overlap!r}") from None
    if timeout_ms is not None and timeout_ms <= 0:
        raise JobRuleError(f"timeout: must be a positive number of milliseconds, got {timeout_ms}")
    check_schedule(schedule, now)
    return Job(
        id=job_id,
        name=name,
        schedule=schedule,
        script=resolve_script(script, kind, cwd),
        type=kind,
        description=description or None,
        enabled=enabled,
        timeout_ms=timeout_ms,
        overlap_policy=policy,
        on_failure=on_failure or None,
        on_success=on_success or None,
    )
