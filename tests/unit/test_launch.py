"""execution/launch.py: a job's argv, working folder and variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from jeeves_runner.execution.executor import SpawnError
from jeeves_runner.execution.launch import plan_launch
from jeeves_runner.models import Job


def _job(**fields: object) -> Job:
    base: dict[str, object] = {"id": "j", "name": "J", "schedule": "@daily", "script": ""}
    base.update(fields)
    return Job(**base)  # type: ignore[arg-type]


def test_a_script_runs_with_its_args_in_its_own_folder(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text("print(1)\n")
    launch = plan_launch(_job(script=str(script), args=("a b", "c")), "/py")
    assert launch.argv == ["/py", str(script), "a b", "c"]
    assert launch.cwd == str(tmp_path)
    assert launch.env == {}


def test_the_jobs_cwd_and_env_win(tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text("echo\n")
    job = _job(script=str(script), cwd="/srv", env={"A": "1"})
    launch = plan_launch(job, "/py")
    assert (launch.argv, launch.cwd, launch.env) == (["bash", str(script)], "/srv", {"A": "1"})


def test_a_command_runs_as_given_in_the_runners_folder() -> None:
    launch = plan_launch(_job(command=("rsync", "-a", "x y", "z"), args=("ignored",)), "/py")
    assert (launch.argv, launch.cwd) == (["rsync", "-a", "x y", "z"], None)


def test_a_missing_script_is_a_spawn_error(tmp_path: Path) -> None:
    with pytest.raises(SpawnError, match=r"^Script not found: "):
        plan_launch(_job(script=str(tmp_path / "gone.sh")), "/py")
