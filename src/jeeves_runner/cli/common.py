"""What every command shares: loading config, opening the store, failing in one line.

Nothing heavy is imported at module level: the `state` and `queue` verbs import this module,
and job scripts call them many times per run (the config model pulls in pydantic).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from jeeves_runner.config import Config
    from jeeves_runner.store.protocols import Store

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
    from jeeves_runner.config import ConfigError, load_config

    try:
        return load_config(config_path)
    except ConfigError as exc:
        # A config error may list several problems; they are one message, not a traceback.
        raise CliError(exc.render()) from None


def no_database_message(path: str) -> str:
    return (
        f"no database at {os.path.abspath(path)} (create it with 'jeeves-runner init' "
        "or start the runner)"
    )


@contextmanager
def opened_store(path: str, *, create: bool = False) -> Iterator[Store]:
    """The store for one command (`path`: a SQLite file or a `postgresql://` URL); database
    problems become one-line errors.

    Without `create` a missing file is an error: a typo in a path (or a command run from the
    wrong folder) must not silently start a second, empty database. With it, a new file is
    announced once on stderr. A PostgreSQL schema is created (migrated) by whoever first
    connects: the server and its database must exist already, which is the check.
    """
    from jeeves_runner.store import StoreError
    from jeeves_runner.store.errors import is_driver_error
    from jeeves_runner.store.locations import is_postgres_url
    from jeeves_runner.store.opening import open_store

    is_new = not is_postgres_url(path) and path != ":memory:" and not os.path.exists(path)
    if is_new and not create:
        raise CliError(no_database_message(path))
    try:
        store = open_store(path)
    except StoreError as exc:
        raise CliError(str(exc)) from None
    if is_new:
        click.echo(f"Created database {os.path.abspath(path)}", err=True)
    try:
        yield store
    except Exception as exc:
        # The store's own sentence (busy, full, damaged, a lost connection); else any other
        # driver error in one line; anything else is raised as it is.
        translated = store.translate_error(exc)
        if translated is not exc:
            raise CliError(str(translated)) from None
        if is_driver_error(exc):
            raise CliError(f"database error on {path}: {exc}") from None
        raise
    finally:
        store.close()


# -- arguments ---------------------------------------------------------------------------------

_NEGATIVE_NUMBER = re.compile(r"-(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def arrange_args(command: click.Command, ctx: click.Context, args: Sequence[str]) -> list[str]:
    """`args` reordered so click reads them as a person means them: options first, then `--`,
    then the positional values in their order.

    Two things click alone refuses: a negative number as a value (`queue enqueue q -1`,
    "No such option: -1"), and options after `--` (`state set ns k -- -5 -c cfg.json`,
    "unexpected extra arguments"). A negative number is a value unless the command has an
    option of that name. After `--` the next words fill the positional slots still open,
    whatever they look like; words after those are read as options again. An unknown option
    is left where it is, so click still names it in its error.
    """
    takes_value: dict[str, int] = {}
    slots = 0
    unlimited = False
    for param in command.get_params(ctx):
        if isinstance(param, click.Option):
            size = 0 if (param.is_flag or param.count) else param.nargs
            for name in (*param.opts, *param.secondary_opts):
                takes_value[name] = size
        elif isinstance(param, click.Argument):
            if param.nargs < 0:
                unlimited = True
            else:
                slots += param.nargs
    options: list[str] = []
    values: list[str] = []
    literal_left = 0
    words = list(args)
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if literal_left > 0:
            values.append(word)
            literal_left -= 1
        elif word == "--":
            if unlimited:
                values.extend(words[i:])
                break
            literal_left = max(0, slots - len(values))
        elif word in takes_value:
            size = takes_value[word]
            options.append(word)
            options.extend(words[i : i + size])
            i += size
        elif word.startswith("-") and len(word) > 1 and not _NEGATIVE_NUMBER.fullmatch(word):
            options.append(word)  # `--opt=value`, `-n5`, or unknown: click decides
        else:
            values.append(word)
    return [*options, "--", *values] if values else options


class ArgsCommand(click.Command):
    """A command that takes negative numbers as values and options after `--`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, arrange_args(self, ctx, args))


class ArgsGroup(click.Group):
    """A group whose subcommands (and subgroups) are `ArgsCommand`s."""

    command_class = ArgsCommand
    group_class = type  # subgroups are ArgsGroups too
