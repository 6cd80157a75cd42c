"""What every command shares: loading config, opening the store, failing in one line."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from jeeves_runner.config import Config, ConfigError, load_config
from jeeves_runner.store import SqliteStore, StoreError

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 2

F = TypeVar("F", bound=Callable[..., Any])


class CliError(Exception):
    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def config_option(func: F) -> F:
    return click.option(
        "-c",
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="Config file (JSON). Without it the defaults are used.",
    )(func)


def load(config_path: str | None) -> Config:
    try:
        return load_config(config_path)
    except ConfigError as exc:
        # A config error may list several problems; they are one message, not a traceback.
        raise CliError(exc.render()) from None


@contextmanager
def opened_store(path: str) -> Iterator[SqliteStore]:
    """The store for one command; database problems become one-line errors."""
    try:
        store = SqliteStore(path)
    except StoreError as exc:
        raise CliError(str(exc)) from None
    try:
        yield store
    except sqlite3.Error as exc:
        raise CliError(f"database error on {path}: {exc}") from None
    finally:
        store.close()
