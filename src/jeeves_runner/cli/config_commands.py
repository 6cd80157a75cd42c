"""init, validate, config-show."""

from __future__ import annotations

import json
from pathlib import Path

import click

from jeeves_runner import preflight
from jeeves_runner.cli.common import CliError, config_option, load, opened_store
from jeeves_runner.config import STARTER_CONFIG, ConfigError
from jeeves_runner.scheduling.cron import resolve_zone
from jeeves_runner.scheduling.loop import describe_zone
from jeeves_runner.store import StoreError


@click.command()
@click.option("-o", "--output", default="jeeves-runner.config.json", show_default=True)
def init(output: str) -> None:
    """Write a starter config file (never overwrites), making its folder, and create the
    database it names."""
    path = Path(output)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot make folder {path.parent}: {exc.strerror}") from None
    try:
        with path.open("x", encoding="utf-8") as fh:
            fh.write(json.dumps(STARTER_CONFIG, indent=2) + "\n")
    except FileExistsError:
        raise CliError(f"{path} already exists; not overwriting it") from None
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}") from None
    click.echo(f"Wrote {path}")
    # The database too: every command but start, init, add-job and add-queue refuses a
    # missing one, and their message points here.
    with opened_store(load(str(path)).db_location, create=True):
        pass


@click.command()
@config_option
def validate(config_path: str | None) -> None:
    """Check a config file as `start` would (address, tokens, token files) and print the
    resolved values."""
    config = load(config_path)
    try:
        found = preflight.problems(config)
    except StoreError as exc:
        found = [str(exc)]
    if found:
        raise CliError(ConfigError(config_path or "defaults", found).render())
    click.echo("Config is valid.")
    shown = config.to_json_dict(redact=True)
    shown["timezone"] = describe_zone(resolve_zone(config.timezone))  # what `start` will use
    click.echo(json.dumps(shown, indent=2))


@click.command("config-show")
@config_option
def config_show(config_path: str | None) -> None:
    """Print the resolved config as JSON (token paths and the dbUrl password redacted)."""
    config = load(config_path)
    click.echo(json.dumps(config.to_json_dict(redact=True), indent=2))
