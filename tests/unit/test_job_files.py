"""jobs/files.py and jobs/plan.py: reading a folder of job files and planning its apply."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from jeeves_runner.jobs.files import read_folder
from jeeves_runner.jobs.plan import describe, make_plan
from jeeves_runner.models import Job

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "run.sh").write_text("#!/bin/sh\n")
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    return jobs


def test_a_toml_and_a_json_file_each_define_a_job_named_after_the_file(folder: Path) -> None:
    (folder / "a.toml").write_text('schedule = "@daily"\nscript = "../run.sh"\n')
    (folder / "b.json").write_text('{"schedule": "@daily", "command": ["true"], "name": "B"}')
    (folder / "notes.txt").write_text("ignored")
    read = read_folder(folder, NOW)
    assert read.problems == []
    assert sorted(read.jobs) == ["a", "b"]
    assert read.jobs["a"].name == "a"  # the id when the file gives no name
    assert read.jobs["a"].script == str(folder.parent.resolve() / "run.sh")
    assert read.jobs["a"].source == str(folder.resolve() / "a.toml")
    assert read.jobs["b"].command == ("true",)


def test_run_on_is_read_from_a_job_file(folder: Path) -> None:
    (folder / "a.toml").write_text('schedule = "@daily"\ncommand = ["true"]\nrun_on = ["node-a"]\n')
    assert read_folder(folder, NOW).jobs["a"].run_on == ("node-a",)


def test_two_files_for_one_id_are_both_refused(folder: Path) -> None:
    (folder / "a.toml").write_text('schedule = "@daily"\ncommand = ["true"]\n')
    (folder / "a.json").write_text('{"schedule": "@daily", "command": ["true"]}')
    read = read_folder(folder, NOW)
    assert read.jobs == {}
    assert [p.message for p in read.problems] == ["id: 'a' is also defined by a.json"]
    assert read.broken_ids == {"a"}


def test_a_file_name_that_is_no_id_is_reported(folder: Path) -> None:
    (folder / "a b.toml").write_text('schedule = "@daily"\ncommand = ["true"]\n')
    problem = read_folder(folder, NOW).problems[0]
    assert problem.message == "file name: id: 'a b' may hold only letters, digits, '-', '_' and '.'"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('schedule = "@daily"\ncommand = ["true"]\nenv = { A = 1 }\n', 3,
         "env: the value of 'A' must be a string, got 1"),
        ('schedule = "@daily"\ncommand = ["true"]\ntimeout_ms = 0\n', 3,
         "timeout_ms: must be a positive number of milliseconds, got 0"),
        ('command = ["true"]\n', None, "schedule: is required"),
        ('schedule = 5\n', 1, "schedule: must be a string, got 5"),
        ('schedule = "@daily"\ncommand = ["true"]\nenabled = "yes"\n', 3,
         "enabled: must be true or false"),
        ('schedule = "@daily"\ncommand = ["true"]\nrun_on = ["-x"]\n', 3,
         "run_on: '-x' is not a label (1-63 letters, digits, '_', '.', ':' or '-', "
         "starting with a letter or digit)"),
    ],
)  # fmt: skip
def test_problems_name_the_line_and_the_field(
    folder: Path, text: str, line: int | None, message: str
) -> None:
    (folder / "j.toml").write_text(text)
    problem = read_folder(folder, NOW).problems[0]
    assert (problem.line, problem.message, problem.job_id) == (line, message, "j")


def test_the_plan_lists_added_changed_and_without_file(folder: Path) -> None:
    (folder / "new.toml").write_text('schedule = "@daily"\ncommand = ["true"]\n')
    (folder / "same.toml").write_text('schedule = "@hourly"\ncommand = ["true"]\n')
    read = read_folder(folder, NOW)
    stored = {
        "same": Job(id="same", name="same", schedule="@daily", script="", command=("true",)),
        "old": Job(id="old", name="old", schedule="@daily", script="/x.sh"),
    }
    plan = make_plan(read, set(stored), stored.get)
    assert [j.id for j in plan.added] == ["new"]
    [(changed, changes)] = plan.changed
    assert changed.id == "same"
    assert [(c.name, c.old, c.new) for c in changes] == [
        ("schedule", "@daily", "@hourly"),
        ("source", None, str(folder.resolve() / "same.toml")),
    ]
    assert plan.without_file == ["old"]
    assert describe(plan, prune=False) == [
        "+ new",
        '~ same: schedule "@daily" -> "@hourly"',
        f'~ same: source null -> "{folder.resolve() / "same.toml"}"',
        "- old: no file; kept (apply --prune deletes it)",
        "1 to add, 1 to change, 0 to delete, 1 without a file, 0 with errors",
    ]


def test_an_unchanged_file_is_not_parsed_again(folder: Path) -> None:
    path = folder / "a.toml"
    path.write_text('schedule = "@daily"\ncommand = ["true"]\n')
    first = read_folder(folder, NOW).jobs["a"]
    known = {"a": (first.source, first.source_digest)}
    again = read_folder(folder, NOW, known)
    assert (again.jobs, again.unchanged) == ({}, {"a"})
    path.write_text('schedule = "@daily"\ncommand = ["true"]\n# a comment\n')
    changed = read_folder(folder, NOW, known)
    assert set(changed.jobs) == {"a"} and changed.unchanged == set()


def test_a_file_sets_the_policies_and_a_bad_one_names_its_line(folder: Path) -> None:
    (folder / "a.toml").write_text(
        'schedule = "@daily"\ncommand = ["true"]\nretries = 2\nretry_on = ["timeout", 75]\n'
        'catchup = "all"\ncatchup_max = 3\n'
    )
    (folder / "b.toml").write_text('schedule = "@daily"\ncommand = ["true"]\n\ncatchup = "x"\n')
    read = read_folder(folder, NOW)
    job = read.jobs["a"]
    assert (job.retries, job.retry_on, job.catchup, job.catchup_max) == (
        2,
        ("timeout", "75"),
        "all",
        3,
    )
    (problem,) = read.problems
    assert (problem.line, problem.message) == (4, 'catchup: must be skip, once or all, got "x"')
