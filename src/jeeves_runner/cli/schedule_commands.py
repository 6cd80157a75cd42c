"""next-runs: when will a schedule fire?"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from jeeves_runner.cli.common import CliError
from jeeves_runner.scheduling.cron import InvalidSchedule, next_runs, resolve_zone


@click.command("next-runs")
@click.argument("schedule")
@click.option("-n", "count", type=click.IntRange(1, 1000), default=5, show_default=True)
@click.option("--tz", "zone", default=None, help="IANA zone (default: the machine's zone).")
@click.option(
    "--after",
    default=None,
    help="Start from this instant instead of now: ISO 8601 with a zone or Z, "
    "e.g. 2027-03-13T00:00:00Z.",
)
def next_runs_command(schedule: str, count: int, zone: str | None, after: str | None) -> None:
    """When will SCHEDULE fire? Prints the next fire times."""
    start = datetime.now(UTC) if after is None else _instant(after)
    try:
        tz = resolve_zone(zone)
        fires = next_runs(schedule, after=start, count=count, tz=zone)
    except InvalidSchedule as exc:
        raise CliError(str(exc)) from None
    if not fires:
        click.echo("This schedule never fires.")
        return
    for fire in fires:
        click.echo(fire.astimezone(tz).isoformat())


def _instant(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise CliError(
            f"--after {text!r} is not an instant: use ISO 8601 with a zone, "
            "e.g. 2027-03-13T00:00:00Z or 2027-03-13T00:00:00-05:00"
        )
    return moment


COMMANDS = [next_runs_command]
