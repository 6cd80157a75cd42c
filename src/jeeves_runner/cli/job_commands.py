"""add-job, edit-job, remove-job, enable, disable, show-job, list-jobs.

They write the database directly, so they work with the runner up or down; a running runner
notices the change within a second (`scheduling.schedule_watch`).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import click
import httpx

from jeeves_runner.access_model import AuditAction
from jeeves_runner.cli.access_commands import record_cli
from jeeves_runner.cli.common import (
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CliError,
    config_option,
    load,
    opened_store,
)
from jeeves_runner.config import Config, job_destination_problem
from jeeves_runner.control import JobInFlightError, JobManagedByFileError
from jeeves_runner.jobs.rules import JobRuleError, build_job, policy_fields
from jeeves_runner.models import JOB_POLICY_FIELDS, Job, format_instant
from jeeves_runner.scheduling.cron import InvalidSchedule, parse, resolve_zone
from jeeves_runner.store import JobExistsError

F = TypeVar("F", bound=Callable[..., Any])

JOB_NOT_FOUND = "Job '{}' not found"
ID_WIDTH_MAX = 40
DELETE_TIMEOUT = httpx.Timeout(30.0)


def _now() -> datetime:
    return datetime.now(UTC)


def _job_options(*, required: bool) -> Callable[[F], F]:
    """The definition options add-job and edit-job share; edit-job takes each optionally."""

    def decorate(func: F) -> F:
        options = [
            # No `default=None` beside `required`: click 8.3 counts it as a default given,
            # and would not report the option missing.
            click.option("--name", required=required),
            click.option("--schedule", required=required, help="Cron expression (croner)."),
            click.option(
                "--script",
                default=None,
                help="Script path, or prompt text for a session (or give --command).",
            ),
            click.option(
                "--type",
                "job_type",
                default="script" if required else None,
                show_default=required,
                help="script|session",
            ),
            click.option("--description", default=None, help="'' clears it (edit-job)."),
            click.option("--timeout", "timeout_ms", type=int, default=None, help="Timeout in ms."),
            click.option(
                "--overlap",
                default="skip" if required else None,
                show_default=required,
                help="skip|queue|allow",
            ),
            click.option("--on-failure", default=None, help="Slack channel id for failures."),
            click.option("--on-success", default=None, help="Slack channel id for successes."),
            click.option(
                "--command",
                "command_line",
                default=None,
                help="A command run without a shell, split like a shell would "
                "('rsync -a src dst'); instead of --script.",
            ),
            click.option(
                "--arg", "args", multiple=True, help="An argument for the script (repeat)."
            ),
            click.option(
                "--env", "env_pairs", multiple=True, help="NAME=VALUE for the job (repeat)."
            ),
            click.option(
                "--cwd",
                "work_dir",
                default=None,
                help="Folder to run in (default: the script's folder; the runner's for a command).",
            ),
            click.option("--timezone", default=None, help="IANA zone of the schedule."),
            click.option("--tag", "tags", multiple=True, help="A free-form label (repeat)."),
            click.option(
                "--run-on",
                "run_on",
                multiple=True,
                help="Cluster mode: a label a node must carry to run the job (repeat).",
            ),
        ]
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def _policy_options(func: F) -> F:
    """Issue 13's fields: retries, catch-up and alerts (add-job and edit-job alike; an
    option not given keeps the default, or, for edit-job, the job's value)."""
    options = [
        click.option("--retries", type=int, default=None, help="Tries after a failure (0)."),
        click.option(
            "--retry-delay", "retry_delay_ms", type=int, default=None,
            help="Longest wait before the first retry, ms (10000).",
        ),
        click.option(
            "--retry-backoff", type=float, default=None, help="Growth of the wait per retry (2)."
        ),
        click.option(
            "--retry-max-delay", "retry_max_delay_ms", type=int, default=None,
            help="Cap of the wait before a retry, ms (600000).",
        ),
        click.option(
            "--retry-on", multiple=True,
            help="error, timeout or an exit code; what is retried (repeat; error and timeout).",
        ),
        click.option("--catchup", default=None, help="skip|once|all: fires missed while down."),
        click.option(
            "--catchup-max", type=int, default=None, help="Most missed fires run by all (10)."
        ),
        click.option(
            "--catchup-window", "catchup_window_ms", type=int, default=None,
            help="Only missed fires this recent are run, ms (86400000).",
        ),
        click.option("--notify", default=None, help="always|change (change)."),
        click.option(
            "--notify-repeat", type=int, default=None, help="Alert again every N failures (10)."
        ),
        click.option(
            "--late-after", "late_after_ms", type=int, default=None,
            help="Alert when a fire has not started this late, ms (60000).",
        ),
        click.option(
            "--max-duration", "max_duration_ms", type=int, default=None,
            help="Alert when a run takes longer, ms (none).",
        ),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def _given_policies(options: dict[str, Any]) -> dict[str, object]:
    given: dict[str, object] = {}
    for name in JOB_POLICY_FIELDS:
        value = options.get(name)
        if value is None or value == ():
            continue
        given[name] = list(value) if isinstance(value, tuple) else value
    return given


@click.command("add-job")
@click.option("--id", "job_id", required=True, help="Job id: letters, digits, - _ .")
@_job_options(required=True)
@_policy_options
@click.option("--disabled", is_flag=True, help="Store the job disabled.")
@config_option
def add_job(
    job_id: str,
    name: str,
    schedule: str,
    script: str | None,
    job_type: str,
    description: str | None,
    timeout_ms: int | None,
    overlap: str,
    on_failure: str | None,
    on_success: str | None,
    command_line: str | None,
    args: tuple[str, ...],
    env_pairs: tuple[str, ...],
    work_dir: str | None,
    timezone: str | None,
    tags: tuple[str, ...],
    run_on: tuple[str, ...],
    disabled: bool,
    config_path: str | None,
    **policy_options: Any,
) -> None:
    """Add a job to the database."""
    config = load(config_path)
    job = _built(
        command=_split_command(command_line),
        args=args,
        env=_env(env_pairs),
        work_dir=work_dir,
        timezone=timezone,
        tags=tags,
        run_on=run_on,
        job_id=job_id,
        name=name,
        schedule=schedule,
        script=script,
        job_type=job_type,
        description=description,
        timeout_ms=timeout_ms,
        overlap=overlap,
        on_failure=on_failure,
        on_success=on_success,
        enabled=not disabled,
        policies=_given_policies(policy_options),
    )
    _check_destinations(job, config)
    with opened_store(config.db_location, create=True) as store:
        try:
            store.jobs.add_job(job, format_instant(_now()))
        except JobExistsError as exc:
            raise CliError(str(exc)) from None
        record_cli(store, AuditAction.JOB_ADDED, job.id, after=store.jobs.get_job_row(job.id))
    target = shlex.join(job.command) if job.command is not None else job.script
    click.echo(f"Added job '{job.id}' ({job.schedule}) -> {target}")


@click.command("edit-job")
@click.argument("job_id")
@_job_options(required=False)
@_policy_options
@click.option("--no-timeout", is_flag=True, help="Remove the job's timeout.")
@config_option
def edit_job(
    job_id: str,
    name: str | None,
    schedule: str | None,
    script: str | None,
    job_type: str | None,
    description: str | None,
    timeout_ms: int | None,
    overlap: str | None,
    on_failure: str | None,
    on_success: str | None,
    command_line: str | None,
    args: tuple[str, ...],
    env_pairs: tuple[str, ...],
    work_dir: str | None,
    timezone: str | None,
    tags: tuple[str, ...],
    run_on: tuple[str, ...],
    no_timeout: bool,
    config_path: str | None,
    **policy_options: Any,
) -> None:
    """Change some fields of job JOB_ID; the others stay. The add-job rules apply."""
    if no_timeout and timeout_ms is not None:
        raise CliError("--timeout and --no-timeout cannot be given together", EXIT_USAGE)
    config = load(config_path)
    with opened_store(config.db_location) as store:
        current = store.jobs.get_job(job_id)
        if current is None:
            raise CliError(JOB_NOT_FOUND.format(job_id))
        if current.source is not None:
            raise CliError(str(JobManagedByFileError(job_id, current.source)))
        # The stored script is absolute already; a new one is read from here, as add-job does.
        # A new command replaces the script, and a new script the command.
        command = _split_command(command_line)
        if command is None and script is None:
            command = list(current.command) if current.command is not None else None
        job = _built(
            job_id=job_id,
            name=_pick(name, current.name),
            schedule=_pick(schedule, current.schedule),
            script=script if script is not None or command_line is not None else current.script,
            command=command,
            # A new command drops the script's args (they belong to a script).
            args=args or (() if command_line is not None else current.args),
            env=_env(env_pairs) if env_pairs else current.env,
            work_dir=_pick(work_dir, current.cwd) or None,
            timezone=_pick(timezone, current.timezone) or None,
            tags=tags or current.tags,
            run_on=run_on or current.run_on,
            job_type=_pick(job_type, current.type.value),
            description=_pick(description, current.description),
            timeout_ms=None if no_timeout else _pick(timeout_ms, current.timeout_ms),
            overlap=_pick(overlap, current.overlap_policy.value),
            on_failure=_pick(on_failure, current.on_failure),
            on_success=_pick(on_success, current.on_success),
            enabled=current.enabled,
            policies={**policy_fields(current), **_given_policies(policy_options)},
        )
        if job.on_failure != current.on_failure or job.on_success != current.on_success:
            _check_destinations(job, config)
        changed = _changed_fields(current, job)
        if not changed:
            click.echo(f"Job '{job_id}' unchanged")
            return
        before = store.jobs.get_job_row(job_id)
        if not store.jobs.update_job(job, format_instant(_now())):
            raise CliError(JOB_NOT_FOUND.format(job_id))
        after = store.jobs.get_job_row(job_id)
        record_cli(store, AuditAction.JOB_EDITED, job_id, before=before, after=after)
    click.echo(f"Changed job '{job_id}': {', '.join(changed)}")


@click.command("remove-job")
@click.argument("job_id")
@click.option("--force", is_flag=True, help="Stop a run in flight first instead of refusing.")
@config_option
def remove_job(job_id: str, force: bool, config_path: str | None) -> None:
    """Delete job JOB_ID and its run history."""
    config = load(config_path)
    with opened_store(config.db_location) as store:
        current = store.jobs.get_job(job_id)
        if current is None:
            raise CliError(JOB_NOT_FOUND.format(job_id))
        if current.source is not None:
            raise CliError(str(JobManagedByFileError(job_id, current.source)))
        in_flight = store.runs.count_unfinished(job_id) > 0
        if in_flight and not force:
            raise CliError(str(JobInFlightError(job_id)))
        # A run in flight belongs to a running runner, which alone can stop its process:
        # ask it. Unreachable means no runner, and the open rows are leftovers.
        before = store.jobs.get_job_row(job_id)
        if not (in_flight and _delete_through_runner(config, job_id)):
            store.jobs.delete_job(job_id)
        record_cli(store, AuditAction.JOB_REMOVED, job_id, before=before)
    click.echo(f"Removed job '{job_id}'")


def _delete_through_runner(config: Config, job_id: str) -> bool:
    from jeeves_runner.cli.api_commands import api_url, call_api

    try:
        response = call_api(
            config, "DELETE", f"/jobs/{quote(job_id, safe='')}?force=true", DELETE_TIMEOUT
        )
    except CliError as exc:
        if exc.exit_code == EXIT_UNREACHABLE:
            return False
        raise
    if response.status_code in (200, 404):
        return True
    raise CliError(
        f"the runner at {api_url(config)} refused to delete '{job_id}' "
        f"(HTTP {response.status_code}: {response.text.strip()[:200]})"
    )


@click.command("enable")
@click.argument("job_id")
@config_option
def enable(job_id: str, config_path: str | None) -> None:
    """Enable job JOB_ID: it fires on its schedule again."""
    _set_enabled(job_id, True, config_path)


@click.command("disable")
@click.argument("job_id")
@config_option
def disable(job_id: str, config_path: str | None) -> None:
    """Disable job JOB_ID: it does not fire until enabled."""
    _set_enabled(job_id, False, config_path)


def _set_enabled(job_id: str, enabled: bool, config_path: str | None) -> None:
    with opened_store(load(config_path).db_location) as store:
        if not store.jobs.set_enabled(job_id, enabled, format_instant(_now())):
            raise CliError(JOB_NOT_FOUND.format(job_id))
        action = AuditAction.JOB_ENABLED if enabled else AuditAction.JOB_DISABLED
        record_cli(store, action, job_id)
    click.echo(f"{'Enabled' if enabled else 'Disabled'} job '{job_id}'")


@click.command("show-job")
@click.argument("job_id")
@config_option
def show_job(job_id: str, config_path: str | None) -> None:
    """Show job JOB_ID: its definition, its next 5 fires and its last 5 runs."""
    config = load(config_path)
    with opened_store(config.db_location) as store:
        job = store.jobs.get_job(job_id)
        if job is None:
            raise CliError(JOB_NOT_FOUND.format(job_id))
        runs = store.runs.list_runs(job_id, 5)
    zone = resolve_zone(job.timezone or config.timezone)
    rows = [
        ("id", job.id),
        ("name", job.name),
        ("status", "enabled" if job.enabled else "disabled"),
        ("schedule", job.schedule),
        ("type", job.type.value),
        ("script", job.script or None),
        ("command", shlex.join(job.command) if job.command is not None else None),
        ("args", shlex.join(job.args) if job.args else None),
        ("env", " ".join(f"{k}={v}" for k, v in sorted(job.env.items())) or None),
        ("cwd", job.cwd or ("the runner's folder" if job.command else "the script's folder")),
        ("timezone", job.timezone or "the runner's"),
        ("tags", ", ".join(job.tags) or None),
        ("run on", ", ".join(job.run_on) or None),
        ("description", job.description),
        ("timeout", f"{job.timeout_ms} ms" if job.timeout_ms else None),
        ("overlap", job.overlap_policy.value),
        ("retries", _retries_text(job)),
        ("catch-up", _catchup_text(job)),
        ("on failure", job.on_failure),
        ("on success", job.on_success),
        ("created", job.created_at),
        ("updated", job.updated_at),
    ]
    width = max(len(label) for label, _ in rows) + 1
    for label, value in rows:
        click.echo(f"{label + ':':<{width}} {value if value is not None else '-'}")
    click.echo("")
    fires = _next_fires(job.schedule, zone, 5) if job.enabled else []
    if not job.enabled:
        click.echo("Next fires: none (disabled)")
    elif not fires:
        click.echo("Next fires: none (the schedule never fires)")
    else:
        click.echo("Next fires:")
        for fire in fires:
            click.echo(f"  {fire.isoformat()}")
    click.echo("")
    if not runs:
        click.echo("Last runs: none")
        return
    click.echo("Last runs:")
    for run in runs:
        took = f"{run['duration_ms']} ms" if run["duration_ms"] is not None else "-"
        click.echo(
            f"  #{run['id']}  {run['status']:<8} {run['started_at'] or '-':<24}  {took:>10}"
            f"  {run['trigger']}"
        )


@click.command("list-jobs")
@config_option
def list_jobs(config_path: str | None) -> None:
    """List jobs: id, status, last result, next fire, schedule, name."""
    config = load(config_path)
    with opened_store(config.db_location) as store:
        jobs = store.jobs.list_jobs_with_last_run()
    if not jobs:
        click.echo("No jobs.")
        return
    zone = resolve_zone(config.timezone)
    now = _now()
    header = ("ID", "STATUS", "LAST RESULT", "NEXT FIRE", "SCHEDULE", "NAME")
    rows = [header]
    for job in jobs:
        last = f"{job['last_status']} {job['last_run']}" if job["last_status"] else "-"
        if job["enabled"]:
            job_zone = resolve_zone(job["timezone"]) if job["timezone"] else zone
            fires = _next_fires(job["schedule"], job_zone, 1, now)
            next_fire = fires[0].isoformat() if fires else "never"
        else:
            next_fire = "-"
        status = "enabled" if job["enabled"] else "disabled"
        rows.append((_cut(job["id"]), status, last, next_fire, job["schedule"], job["name"]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    for row in rows:
        cells = [f"{cell:<{w}}" for cell, w in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, row[-1]]))


def _cut(job_id: str) -> str:
    return job_id if len(job_id) <= ID_WIDTH_MAX else job_id[: ID_WIDTH_MAX - 1] + "…"


def _next_fires(
    schedule: str, zone: tzinfo, count: int, now: datetime | None = None
) -> list[datetime]:
    """Up to `count` fires after `now`, in `zone`; none for a schedule that cannot fire."""
    try:
        parsed = parse(schedule)
    except InvalidSchedule:
        return []
    fires: list[datetime] = []
    current = now or _now()
    for _ in range(count):
        fire = parsed.next_after(current, zone)
        if fire is None:
            break
        fires.append(fire.astimezone(zone))
        current = fire
    return fires


def _split_command(text: str | None) -> list[str] | None:
    if text is None:
        return None
    try:
        return shlex.split(text)
    except ValueError as exc:  # an unclosed quote
        raise CliError(f"command: cannot be split into words ({exc})") from None


def _env(pairs: tuple[str, ...]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CliError(f"env: {pair!r} is not NAME=VALUE")
        env[name] = value
    return env


def _retries_text(job: Job) -> str | None:
    if not job.retries:
        return None
    return (
        f"{job.retries} on {', '.join(job.retry_on)}; waits up to {job.retry_delay_ms} ms "
        f"x{job.retry_backoff:g} per try, at most {job.retry_max_delay_ms} ms (full jitter)"
    )


def _catchup_text(job: Job) -> str:
    if job.catchup == "skip":
        return "skip (missed fires are recorded, not run)"
    most = f"at most {job.catchup_max}, " if job.catchup == "all" else ""
    return f"{job.catchup} ({most}within {job.catchup_window_ms} ms)"


def _pick(new: Any, old: Any) -> Any:
    return old if new is None else new


def _check_destinations(job: Job, config: Config) -> None:
    problem = job_destination_problem(
        job.on_failure, job.on_success, config.notifications.webhook_names
    )
    if problem is not None:
        raise CliError(problem)


def _built(**fields: Any) -> Job:
    try:
        return build_job(**fields, cwd=Path.cwd(), now=_now())
    except JobRuleError as exc:
        raise CliError(str(exc)) from None


_COMPARED = (
    "name",
    "schedule",
    "script",
    "type",
    "description",
    "timeout_ms",
    "overlap_policy",
    "on_failure",
    "on_success",
    "command",
    "args",
    "env",
    "cwd",
    "timezone",
    "tags",
    "run_on",
    *JOB_POLICY_FIELDS,
)


def _changed_fields(old: Job, new: Job) -> list[str]:
    new = replace(new, created_at=old.created_at, updated_at=old.updated_at)
    return [f for f in _COMPARED if getattr(old, f) != getattr(new, f)]


COMMANDS = [add_job, edit_job, remove_job, enable, disable, show_job, list_jobs]
