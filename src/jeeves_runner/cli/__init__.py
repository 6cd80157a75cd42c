"""`jeeves-runner`: parse, call, print, exit code. Every error is one line on stderr.

Commands are loaded when they are called: `state get` must not pay for the HTTP client,
the config model or the server stack (job scripts call it many times per run).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from jeeves_runner import __version__
from jeeves_runner.cli.common import EXIT_USAGE, CliError

# command name -> (module under jeeves_runner.cli, attribute)
COMMAND_MODULES: dict[str, tuple[str, str]] = {
    "init": ("config_commands", "init"),
    "validate": ("config_commands", "validate"),
    "config-show": ("config_commands", "config_show"),
    "add-job": ("job_commands", "add_job"),
    "edit-job": ("job_commands", "edit_job"),
    "remove-job": ("job_commands", "remove_job"),
    "enable": ("job_commands", "enable"),
    "disable": ("job_commands", "disable"),
    "show-job": ("job_commands", "show_job"),
    "list-jobs": ("job_commands", "list_jobs"),
    "plan": ("file_commands", "plan"),
    "apply": ("file_commands", "apply"),
    "service": ("service_commands", "service"),
    "start": ("runner_commands", "start"),
    "next-runs": ("schedule_commands", "next_runs_command"),
    "status": ("api_commands", "status"),
    "trigger": ("api_commands", "trigger"),
    "runs": ("run_commands", "runs"),
    "logs": ("run_commands", "logs"),
    "cancel": ("run_commands", "cancel"),
    "state": ("data_commands", "state"),
    "queue": ("data_commands", "queue"),
    "add-queue": ("data_commands", "add_queue"),
    "list-queues": ("data_commands", "list_queues"),
    "batch": ("batch_command", "batch"),
    "token": ("access_commands", "token"),
    "audit": ("access_commands", "audit"),
    "migrate": ("migrate_command", "migrate"),
}


class LazyGroup(click.Group):
    """Imports a command's module only when that command is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMAND_MODULES.get(cmd_name)
        if target is None:
            return None
        module = importlib.import_module(f"jeeves_runner.cli.{target[0]}")
        command = getattr(module, target[1])
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="jeeves-runner")
def cli() -> None:
    """jeeves-runner: cron jobs, run history, state and queues in one SQLite file."""


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
