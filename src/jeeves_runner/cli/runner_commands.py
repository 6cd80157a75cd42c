"""start: the scheduler and the HTTP API in one process."""

from __future__ import annotations

import os

import click

from jeeves_runner.cli.common import CliError, config_option, load, opened_store
from jeeves_runner.execution import event_loop
from jeeves_runner.store import StoreError
from jeeves_runner.store.errors import is_driver_error


@click.command()
@config_option
def start(config_path: str | None) -> None:
    """Run the scheduler and the HTTP API until SIGTERM/SIGINT."""
    # Imported here: the server stack is heavy and other commands (which job scripts call
    # often, e.g. `state get`) should start fast.
    from jeeves_runner.auth import InsecureBindError
    from jeeves_runner.logs import configure_logging
    from jeeves_runner.process_lock import DatabaseInUseError
    from jeeves_runner.runner import Runner

    config = load(config_path)
    try:
        configure_logging(config.log.level, config.log.file)
    except OSError as exc:
        raise CliError(f"cannot open log file {config.log.file}: {exc.strerror}") from None
    if config.db_url is None and not os.path.exists(config.db_path):
        # Made (and said so) here, once: every other command that uses data refuses a
        # missing database, and a new file must not go unnoticed.
        with opened_store(config.db_path, create=True):
            pass
    runner = Runner(config, config_path=config_path)
    try:
        code = event_loop.run(runner.run_until_signalled())
    except (DatabaseInUseError, StoreError, InsecureBindError) as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(str(exc)) from None
    except Exception as exc:
        if not is_driver_error(exc):
            raise
        raise CliError(f"database error: {exc}") from None
    if code:
        # A second stop signal ended runs at once: exit as a process killed by it would.
        raise SystemExit(code)


COMMANDS = [start]
