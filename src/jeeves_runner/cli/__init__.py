"""`jeeves-runner`: parse, call, print, exit code. Every error is one line on stderr."""

from __future__ import annotations

import sys
from typing import Any

import click

from jeeves_runner import __version__
from jeeves_runner.cli import (
    api_commands,
    data_commands,
    run_commands,
    runner_commands,
    schedule_commands,
)
from jeeves_runner.cli.common import EXIT_USAGE, CliError
from jeeves_runner.cli.config_commands import config_show, init, validate
from jeeves_runner.cli.job_commands import add_job, list_jobs
from jeeves_runner.cli.service_commands import service


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="jeeves-runner")
def cli() -> None:
    """jeeves-runner: cron jobs, run history, state and queues in one SQLite file."""


for command in (
    init,
    validate,
    config_show,
    add_job,
    list_jobs,
    service,
    *runner_commands.COMMANDS,
    *schedule_commands.COMMANDS,
    *api_commands.COMMANDS,
    *run_commands.COMMANDS,
    *data_commands.COMMANDS,
):
    cli.add_command(command)


# Click >= 8.2 raises this (a UsageError) for a group called without a command; older
# versions print the help themselves and exit 0, so an empty tuple matches nothing there.
_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


def main(argv: list[str] | None = None) -> None:
    try:
        # Outside standalone mode click returns ctx.exit(n)'s code instead of raising it.
        code = cli.main(args=argv, prog_name="jeeves-runner", standalone_mode=False)
    except CliError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except _NO_ARGS_IS_HELP as exc:
        # `jeeves-runner` or `jeeves-runner service` alone: show the help, not an error.
        click.echo(exc.format_message())
        sys.exit(0)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        # Usage problems: one line, not click's three-line usage block.
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(EXIT_USAGE)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
