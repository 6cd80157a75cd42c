"""migrate: copy a SQLite database into PostgreSQL, to switch a runner to `dbUrl`."""

from __future__ import annotations

import os

import click

from jeeves_runner.cli.common import CliError, config_option, load, no_database_message

# What each table's count is called in the report.
_NOUNS = {
    "jobs": "jobs",
    "runs": "runs",
    "run_logs": "log chunks",
    "state": "state keys",
    "state_items": "state items",
    "queues": "queues",
    "queue_items": "queue items",
    "api_tokens": "tokens",
    "audit_log": "audit entries",
}
# Copied without a mention: bookkeeping (each job's last fired instant, each job's alert
# streak), not data.
_UNREPORTED = {"job_fire_marks", "notify_state"}


@click.command()
@click.option("--to", "target_url", required=True, help="postgresql:// URL to copy into.")
@click.option(
    "--from",
    "source_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="SQLite file to copy from. Default: -c's dbPath, else the config default.",
)
@click.option("--force", is_flag=True, help="Replace what the target already holds.")
@config_option
def migrate(target_url: str, source_path: str | None, force: bool, config_path: str | None) -> None:
    """Copy jobs, runs, state and queues from a SQLite file into PostgreSQL.

    Stop the runner first. The target must be empty unless --force. Then set dbUrl (and
    remove dbPath) in the config and start the runner again.
    """
    from jeeves_runner.store import StoreError
    from jeeves_runner.store.locations import postgres_url_problem, redact_url

    problem = postgres_url_problem(target_url)
    if problem is not None:
        raise CliError(f"--to {problem}, got {redact_url(target_url)!r}")
    if source_path is not None and config_path is not None:
        raise CliError("use either --from or -c, not both")
    source_path = source_path or load(config_path).db_path
    if not os.path.exists(source_path):
        raise CliError(no_database_message(source_path))

    from jeeves_runner.store.postgres import PostgresStore
    from jeeves_runner.store.sqlite import SqliteStore
    from jeeves_runner.store.transfer import copy_sqlite_to_postgres

    try:
        source = SqliteStore(source_path)
    except StoreError as exc:
        raise CliError(str(exc)) from None
    try:
        target = PostgresStore(target_url, pool_size=1)
    except StoreError as exc:
        source.close()
        raise CliError(str(exc)) from None
    try:
        report = copy_sqlite_to_postgres(source, target, force=force)
    except StoreError as exc:
        raise CliError(str(exc)) from None
    except Exception as exc:
        translated = target.translate_error(exc)
        if translated is exc:
            raise
        raise CliError(str(translated)) from None
    finally:
        target.close()
        source.close()
    counts = ", ".join(
        f"{n} {_NOUNS.get(t, t)}" for t, n in report.copied.items() if t not in _UNREPORTED
    )
    click.echo(f"Copied {counts} from {source_path} to {redact_url(target_url)}")
    for table, column in report.left_behind:
        click.echo(f"warning: {table}.{column} has no column in the target; not copied", err=True)
