"""add-job, list-jobs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from jeeves_runner.cli.common import CliError, config_option, load, opened_store
from jeeves_runner.jobs.rules import JobRuleError, build_job
from jeeves_runner.models import format_instant
from jeeves_runner.store import JobExistsError


@click.command("add-job")
@click.option("--id", "job_id", required=True, help="Job id: letters, digits, - _ .")
@click.option("--name", required=True)
@click.option("--schedule", required=True, help="Cron expression (croner syntax).")
@click.option("--script", required=True, help="Script path, or prompt text for a session.")
@click.option("--type", "job_type", default="script", show_default=True, help="script|session")
@click.option("--description", default=None)
@click.option("--timeout", "timeout_ms", type=int, default=None, help="Timeout in ms.")
@click.option("--overlap", default="skip", show_default=True, help="skip|queue|allow")
@click.option("--on-failure", default=None, help="Slack channel id for failures.")
@click.option("--on-success", default=None, help="Slack channel id for successes.")
@click.option("--disabled", is_flag=True, help="Store the job disabled.")
@config_option
def add_job(
    job_id: str,
    name: str,
    schedule: str,
    script: str,
    job_type: str,
    description: str | None,
    timeout_ms: int | None,
    overlap: str,
    on_failure: str | None,
    on_success: str | None,
    disabled: bool,
    config_path: str | None,
) -> None:
    """Add a job to the database."""
    config = load(config_path)
    try:
        job = build_job(
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
            cwd=Path.cwd(),
        )
    except JobRuleError as exc:
        raise CliError(str(exc)) from None
    with opened_store(config.db_location, create=True) as store:
        try:
            store.jobs.add_job(job, format_instant(datetime.now(UTC)))
        except JobExistsError as exc:
            raise CliError(str(exc)) from None
    click.echo(f"Added job '{job.id}' ({job.schedule}) -> {job.script}")


@click.command("list-jobs")
@config_option
def list_jobs(config_path: str | None) -> None:
    """List jobs: enabled mark, id, schedule, name."""
    with opened_store(load(config_path).db_location) as store:
        jobs = store.jobs.list_jobs()
    if not jobs:
        click.echo("No jobs.")
        return
    id_width = max(len(j.id) for j in jobs)
    schedule_width = max(len(j.schedule) for j in jobs)
    for job in jobs:
        mark = "✓" if job.enabled else "✗"
        click.echo(f"{mark} {job.id:<{id_width}}  {job.schedule:<{schedule_width}}  {job.name}")
