"""Checks on a job definition before it is stored. Pure: no database, no clock."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from jeeves_runner.cluster_model import LABEL, LABEL_RULE
from jeeves_runner.execution.executor import SCRIPT_EXTENSIONS
from jeeves_runner.models import Job, JobType, OverlapPolicy
from jeeves_runner.scheduling.cron import InvalidSchedule, parse, resolve_zone

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


def check_strings(name: str, value: object) -> tuple[str, ...]:
    """A list of strings (args, command, tags)."""
    if not isinstance(value, (list, tuple)):
        raise JobRuleError(f"{name}: must be a list of strings, got {_shown(value)}")
    for item in value:
        if not isinstance(item, str):
            raise JobRuleError(f"{name}: must be a list of strings, got the item {_shown(item)}")
    return tuple(value)


def check_labels(name: str, value: object) -> tuple[str, ...]:
    """A list of node labels (`run_on`): each letters, digits, '_', '.', ':' and '-'."""
    labels = check_strings(name, value)
    for label in labels:
        if not LABEL.match(label):
            raise JobRuleError(f"{name}: {label!r} is not a label ({LABEL_RULE})")
    return tuple(dict.fromkeys(labels))


def check_command(value: object) -> tuple[str, ...]:
    command = check_strings("command", value)
    if not command or not command[0].strip():
        raise JobRuleError("command: must name a program to run as its first item")
    return command


def check_env(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise JobRuleError(f"env: must be an object of names to strings, got {_shown(value)}")
    for key, item in value.items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            raise JobRuleError(f"env: {key!r} is not a variable name")
        if not isinstance(item, str):
            raise JobRuleError(f"env: the value of {key!r} must be a string, got {_shown(item)}")
    return dict(value)


def check_timezone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        resolve_zone(value)  # the lookup the scheduler does
    except InvalidSchedule:
        raise JobRuleError(f"timezone: unknown time zone {value!r}") from None
    return value


def resolve_cwd(value: str | None, base: Path) -> str | None:
    """An existing folder, stored absolute."""
    if value is None:
        return None
    if not value.strip():
        raise JobRuleError("cwd: must not be empty")
    path = _absolute(value, base)
    try:
        if not path.is_dir():
            reason = "does not exist" if not path.exists() else "is not a folder"
            raise JobRuleError(f"cwd: {path} {reason}")
    except OSError as exc:
        raise JobRuleError(f"cwd: cannot check {path} ({exc.strerror or exc})") from None
    return str(path)


def _shown(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


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
    script: str | None,
    job_type: str = "script",
    description: str | None = None,
    timeout_ms: int | None = None,
    overlap: str = "skip",
    on_failure: str | None = None,
    on_success: str | None = None,
    enabled: bool = True,
    cwd: Path,
    now: datetime,
    command: object = None,
    args: object = (),
    env: object = None,
    work_dir: str | None = None,
    timezone: str | None = None,
    tags: object = (),
    run_on: object = (),
) -> Job:
    """`cwd` is the folder relative paths are read from (the shell's, or a job file's);
    `work_dir` is the job's own `cwd` field, the folder its child runs in."""
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
    if command is not None:
        if kind is JobType.SESSION:
            raise JobRuleError("command: a session job takes a prompt in script, not a command")
        argv: tuple[str, ...] | None = check_command(command)
        if script:
            raise JobRuleError("command: give a script or a command, not both")
        if check_strings("args", args):
            raise JobRuleError("args: are for a script; put a command's arguments in the command")
        stored_script = ""
    else:
        if script is None:
            raise JobRuleError("script: is required (or give a command)")
        argv = None
        stored_script = resolve_script(script, kind, cwd)
    return Job(
        id=job_id,
        name=name,
        schedule=schedule,
        script=stored_script,
        command=argv,
        args=check_strings("args", args),
        env=check_env(env if env is not None else {}),
        cwd=resolve_cwd(work_dir, cwd),
        timezone=check_timezone(timezone),
        tags=check_strings("tags", tags),
        run_on=check_labels("run_on", run_on),
        type=kind,
        description=description or None,
        enabled=enabled,
        timeout_ms=timeout_ms,
        overlap_policy=policy,
        on_failure=on_failure or None,
        on_success=on_success or None,
    )
