"""plan and apply: a temp jobs folder against a real database, through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jeeves_runner.store import SqliteStore


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "mail.sh").write_text("#!/bin/sh\necho mail\n")
    return jobs


@pytest.fixture
def cli(run_cli: Any, tmp_path: Path, folder: Path) -> Any:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"dbPath": "runner.sqlite", "jobsDir": "jobs"}))
    SqliteStore(tmp_path / "runner.sqlite").close()  # made once, as `init` would

    def call(*args: str) -> Any:
        return run_cli(*args, "-c", str(config), cwd=tmp_path)

    return call


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def jobs(tmp_path: Path) -> dict[str, Any]:
    store = SqliteStore(tmp_path / "runner.sqlite")
    try:
        return {job.id: job for job in store.jobs.list_jobs()}
    finally:
        store.close()


MAIL = 'name = "Mail"\nschedule = "0 3 * * *"\nscript = "../scripts/mail.sh"\n'


def ok(result: Any) -> str:
    code, out, err = result
    assert (code, err) == (0, ""), err
    return str(out)


def test_plan_then_apply_adds_a_job_whose_paths_are_read_beside_the_file(
    cli: Any, folder: Path, tmp_path: Path
) -> None:
    path = write(folder, "mail.toml", MAIL + 'tags = ["mail"]\n')
    assert ok(cli("plan")).splitlines() == [
        "+ mail",
        "1 to add, 0 to change, 0 to delete, 0 without a file, 0 with errors",
    ]
    assert jobs(tmp_path) == {}  # plan writes nothing
    ok(cli("apply"))
    job = jobs(tmp_path)["mail"]
    assert job.script == str(tmp_path / "scripts" / "mail.sh")
    assert (job.name, job.tags, job.source) == ("Mail", ("mail",), str(path))


@pytest.mark.slow
def test_a_change_is_shown_field_by_field_and_a_second_apply_writes_nothing(
    cli: Any, folder: Path, tmp_path: Path
) -> None:
    write(folder, "mail.toml", MAIL)
    ok(cli("apply"))
    write(folder, "mail.toml", MAIL.replace("0 3", "0 4") + "timeout_ms = 5000\n")
    assert ok(cli("plan")).splitlines()[:2] == [
        '~ mail: schedule "0 3 * * *" -> "0 4 * * *"',
        "~ mail: timeout_ms null -> 5000",
    ]
    ok(cli("apply"))
    before = jobs(tmp_path)["mail"]
    assert (before.schedule, before.timeout_ms) == ("0 4 * * *", 5000)
    db = tmp_path / "runner.sqlite"
    mtime = db.stat().st_mtime_ns
    assert ok(cli("apply")).splitlines() == [
        "0 to add, 0 to change, 0 to delete, 0 without a file, 0 with errors"
    ]
    assert jobs(tmp_path)["mail"].updated_at == before.updated_at
    assert db.stat().st_mtime_ns == mtime


def test_a_rename_adds_the_new_id_and_prune_deletes_the_old(
    cli: Any, folder: Path, tmp_path: Path
) -> None:
    write(folder, "mail.toml", MAIL)
    ok(cli("apply"))
    (folder / "mail.toml").rename(folder / "post.toml")
    assert ok(cli("apply")).splitlines()[:2] == [
        "+ post",
        "- mail: no file; kept (apply --prune deletes it)",
    ]
    assert set(jobs(tmp_path)) == {"mail", "post"}
    assert ok(cli("apply", "--prune")).splitlines()[0] == "- mail: no file; deleted"
    assert set(jobs(tmp_path)) == {"post"}


def test_a_broken_file_is_reported_with_path_and_line_and_the_others_apply(
    cli: Any, folder: Path, tmp_path: Path
) -> None:
    write(folder, "mail.toml", MAIL)
    bad_cron = write(folder, "bad.toml", MAIL.replace("0 3 * * *", "0 0 31 2 *"))
    typo = write(folder, "typo.json", '{\n  "schedule": "@daily",\n  "scirpt": "x"\n}\n')
    broken = write(folder, "broken.toml", 'schedule = "@daily\n')
    code, out, err = cli("apply")
    assert code == 1
    assert err == "error: 3 job file(s) have errors; the others were applied\n"
    lines = out.splitlines()
    assert "+ mail" in lines
    assert f"! {bad_cron}:2: schedule: This schedule never fires." in lines
    assert f"! {typo}:3: scirpt: unknown key (did you mean 'script'?)" in lines
    broken_line = next(line for line in lines if str(broken) in line)
    assert broken_line.startswith(f"! {broken}:1: not valid TOML: ")
    assert set(jobs(tmp_path)) == {"mail"}


def test_a_file_job_refuses_cli_and_api_edits(cli: Any, folder: Path) -> None:
    path = write(folder, "mail.toml", MAIL)
    ok(cli("apply"))
    code, _, err = cli("edit-job", "mail", "--schedule", "@daily")
    assert (code, err) == (1, f"error: Job 'mail' is managed by {path}\n")
    code, _, err = cli("remove-job", "mail")
    assert (code, err) == (1, f"error: Job 'mail' is managed by {path}\n")


def test_without_jobs_dir_plan_says_so(run_cli: Any, tmp_path: Path) -> None:
    code, _, err = run_cli("plan", cwd=tmp_path)
    assert (code, err) == (1, "error: no jobs folder: set jobsDir in the config\n")


def test_a_file_naming_an_unknown_webhook_is_an_error_of_that_file(
    run_cli: Any, folder: Path, tmp_path: Path
) -> None:
    """As the API and `add` refuse such a job: the file is reported, its job left as it was,
    the other files applied; a configured webhook is accepted."""
    config = tmp_path / "hooks.json"
    hooks = [{"name": "ops", "url": "http://127.0.0.1:9/hook", "events": ["run.failed"]}]
    config.write_text(
        json.dumps(
            {"dbPath": "runner.sqlite", "jobsDir": "jobs", "notifications": {"webhooks": hooks}}
        )
    )
    SqliteStore(tmp_path / "runner.sqlite").close()
    write(folder, "known.toml", MAIL + 'on_failure = "webhook:ops"\n')
    unknown = write(folder, "unknown.toml", MAIL + 'on_success = "webhook:pager"\n')
    code, out, err = run_cli("apply", "-c", str(config), cwd=tmp_path)
    assert (code, err) == (1, "error: 1 job file(s) have errors; the others were applied\n")
    assert (
        f'! {unknown}: on_success: no webhook named "pager" in notifications.webhooks '
        "(known: ops)" in out.splitlines()
    )
    assert set(jobs(tmp_path)) == {"known"}
    assert jobs(tmp_path)["known"].on_failure == "webhook:ops"
