"""plan, apply: the jobs folder (config `jobsDir`) against the database."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from jeeves_runner.cli.common import CliError, config_option, load, opened_store
from jeeves_runner.config import Config
from jeeves_runner.jobs.apply import apply_folder, plan_folder
from jeeves_runner.jobs.plan import describe
from jeeves_runner.store import JobExistsError

NO_JOBS_DIR = "no jobs folder: set jobsDir in the config"


def _folder(config: Config) -> Path:
    if config.jobs_dir is None:
        raise CliError(NO_JOBS_DIR)
    return Path(config.jobs_dir)


@click.command("plan")
@config_option
def plan(config_path: str | None) -> None:
    """Show what `apply` would change: + added, ~ changed, - without a file, ! file errors."""
    config = load(config_path)
    folder = _folder(config)
    with opened_store(config.db_location) as store:
        result = plan_folder(store, folder, datetime.now(UTC), config.notifications.webhook_names)
    for line in describe(result, config.jobs_prune):
        click.echo(line)
    if result.problems:
        raise CliError(f"{len(result.problems)} job file(s) have errors")


@click.command("apply")
@click.option("--prune", is_flag=True, help="Also delete jobs that no file defines.")
@config_option
def apply(prune: bool, config_path: str | None) -> None:
    """Apply the jobs folder in one transaction. Files with errors leave their jobs as they
    were; the others still apply."""
    config = load(config_path)
    folder = _folder(config)
    with opened_store(config.db_location, create=True) as store:
        try:
            result = apply_folder(
                store,
                folder,
                datetime.now(UTC),
                prune=prune,
                webhook_names=config.notifications.webhook_names,
            )
        except JobExistsError as exc:  # added by another process since the plan was made
            raise CliError(f"{exc}; nothing was applied, run apply again") from None
    for line in describe(result, prune):
        click.echo(line)
    if result.problems:
        raise CliError(f"{len(result.problems)} job file(s) have errors; the others were applied")


COMMANDS = [plan, apply]
