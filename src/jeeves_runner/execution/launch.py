"""How one job's child is started: its argv, working folder and variables. Pure apart from
the checks `command_for` makes on the script file.

- A `command` job runs its argv as given, without a shell; the program is looked up on the
  PATH the child gets. Its folder is the job's `cwd`, else the runner's.
- A script job runs its script (through the interpreter its extension names) with `args`
  appended. Its folder is the job's `cwd`, else the script's own folder, so a script can open
  files beside it by relative path.
- `env` is applied over the runner's environment; the JR_* variables come after it, so a job
  cannot point its client at another database or run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from jeeves_runner.execution.executor import command_for
from jeeves_runner.models import Job


@dataclass(frozen=True, slots=True)
class Launch:
    argv: list[str]
    cwd: str | None  # None: the runner's own folder
    env: dict[str, str]  # what the job adds to the runner's environment, before JR_*


def plan_launch(job: Job, python: str) -> Launch:
    """Raises SpawnError (one sentence) when a script cannot be started."""
    if job.command is not None:
        return Launch(list(job.command), job.cwd, dict(job.env))
    argv = command_for(job.script, python) + list(job.args)
    return Launch(argv, job.cwd or str(Path(job.script).parent), dict(job.env))
