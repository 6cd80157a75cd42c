"""Checks on a job definition before it is stored. Pure: no database, no clock."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jeeves_runner.cluster_model import LABEL, LABEL_RULE
from jeeves_runner.execution.executor import SCRIPT_EXTENSIONS
from jeeves_runner.models import JOB_POLICY_FIELDS, Job, JobType, OverlapPolicy
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


# Bounds of the policies: wide enough for any real use, narrow enough that a typo (a delay
# in microseconds, a window of years) is caught.
RETRIES_MAX = 100
DELAY_MAX_MS = 7 * 86_400_000  # a week
BACKOFF_MAX = 100.0
CATCHUP_MAX_MAX = 1000
WINDOW_MAX_MS = 366 * 86_400_000  # a year
NOTIFY_REPEAT_MAX = 1_000_000
RETRY_ON_WORDS = ("error", "timeout")
CATCHUP_POLICIES = ("skip", "once", "all")
NOTIFY_POLICIES = ("always", "change")


def _whole(name: str, value: object, low: int, high: int, unit: str = "") -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise JobRuleError(f"{name}: must be a whole number{unit}, got {_shown(value)}")
    if not low <= value <= high:
        raise JobRuleError(f"{name}: must be between {low} and {high}{unit}, got {value}")
    return value


def check_retry_on(value: object) -> tuple[str, ...]:
    """`error`, `timeout` and exit codes (1-255, as numbers or decimal strings); stored as
    strings, without repeats, in the order given."""
    items = [value] if isinstance(value, (str, int)) and not isinstance(value, bool) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise JobRuleError(
            f"retry_on: must be a list of 'error', 'timeout' and exit codes, got {_shown(value)}"
        )
    found: list[str] = []
    for item in items:
        text = str(item).strip() if not isinstance(item, bool) else ""
        if isinstance(item, str) and text in RETRY_ON_WORDS:
            pass
        elif text.isdigit() and 1 <= int(text) <= 255 and isinstance(item, (int, str)):
            text = str(int(text))
        else:
            raise JobRuleError(
                f"retry_on: {_shown(item)} is not 'error', 'timeout' or an exit code (1-255)"
            )
        if text not in found:
            found.append(text)
    return tuple(found)


def check_policies(values: Mapping[str, object]) -> dict[str, Any]:
    """Issue 13's fields of a job (retries, catch-up, alerts): those given, checked and
    typed; fields not given keep their defaults. None stands for "not given", except for
    max_duration_ms, where it means no limit."""
    checked: dict[str, Any] = {}
    for name, value in values.items():
        if name not in JOB_POLICY_FIELDS:
            raise JobRuleError(f"{name}: unknown field")
        if value is None and name != "max_duration_ms":
            continue
        if name == "retries":
            checked[name] = _whole(name, value, 0, RETRIES_MAX)
        elif name in ("retry_delay_ms", "retry_max_delay_ms"):
            checked[name] = _whole(name, value, 0, DELAY_MAX_MS, " of milliseconds")
        elif name == "retry_backoff":
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise JobRuleError(f"retry_backoff: must be a number, got {_shown(value)}")
            if not 1.0 <= float(value) <= BACKOFF_MAX:
                raise JobRuleError(
                    f"retry_backoff: must be between 1 and {BACKOFF_MAX:g}, got {value}"
                )
            checked[name] = float(value)
        elif name == "retry_on":
            checked[name] = check_retry_on(value)
        elif name == "catchup":
            if value not in CATCHUP_POLICIES:
                raise JobRuleError(f"catchup: must be skip, once or all, got {_shown(value)}")
            checked[name] = value
        elif name == "catchup_max":
            checked[name] = _whole(name, value, 1, CATCHUP_MAX_MAX)
        elif name == "catchup_window_ms":
            checked[name] = _whole(name, value, 1, WINDOW_MAX_MS, " of milliseconds")
        elif name == "notify":
            if value not in NOTIFY_POLICIES:
                raise JobRuleError(f"notify: must be always or change, got {_shown(value)}")
            checked[name] = value
        elif name == "notify_repeat":
            checked[name] = _whole(name, value, 1, NOTIFY_REPEAT_MAX)
        elif name == "late_after_ms":
            checked[name] = _whole(name, value, 1, WINDOW_MAX_MS, " of milliseconds")
        elif name == "max_duration_ms":
            checked[name] = (
                None if value is None else _whole(name, value, 1, WINDOW_MAX_MS, " of milliseconds")
            )
    delay = checked.get("retry_delay_ms")
    cap = checked.get("retry_max_delay_ms")
    if delay is not None and cap is not None and cap < delay:
        raise JobRuleError(
            f"retry_max_delay_ms: must not be less than retry_delay_ms ({delay}), got {cap}"
        )
    return checked


def policy_fields(job: Job) -> dict[str, Any]:
    """Issue 13's fields of a job, as bodies and files name them."""
    fields: dict[str, Any] = {name: getattr(job, name) for name in JOB_POLICY_FIELDS}
    fields["retry_on"] = list(job.retry_on)
    return fields


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
    policies: Mapping[str, object] | None = None,
) -> Job:
    """`cwd` is the folder relative paths are read from (the shell's, or a job file's);
    `work_dir` is the job's own `cwd` field, the folder its child runs in. `policies`:
    issue 13's fields given (see check_policies), the rest at their defaults."""
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
        **check_policies(policies or {}),
    )
