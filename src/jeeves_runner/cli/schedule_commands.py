"""next-runs: when will a schedule fire?"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from jeeves_runner.cli.common import CliError
from jeeves_runner.jobs.rules import NEVER_FIRES
from jeeves_runner.scheduling.cron import InvalidSchedule, next_runs, resolve_zone


@click.command("next-runs")
@click.argument("schedule")
@click.option("-n", "count", type=click.IntRange(1, 1000), default=5, show_default=True)
@click.option("--tz", "zone", default=None, help="IANA zone (default: the machine's zone).")
def next_runs_command(schedule: str, count: int, zone: str | None) -> None:
    """When will SCHEDULE fire? Prints the next fire times."""
    try:
        tz = resolve_zone(zone)
        fires = next_runs(schedule, after=datetime.now(UTC), count=count, tz=zone)
    except InvalidSchedule as exc:
        raise CliError(str(exc)) from None
    if not fires:
        click.echo(NEVER_FIRES)
        return
    for fire in fires:
        click.echo(fire.astimezone(tz).isoformat())


COMMANDS = [next_runs_command]
