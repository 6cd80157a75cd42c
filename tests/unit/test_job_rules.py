"""job_rules.py: every check a job definition passes before it is stored, with its text."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from jeeves_runner.jobs.rules import (
    JobRuleError,
    build_job,
    check_job_id,
    check_schedule,
    resolve_script,
)
from jeeves_runner.models import JobType, OverlapPolicy
from jeeves_runner.scheduling.cron import InvalidSchedule, parse

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "job.sh"
    path.write_text("#!/bin/sh\necho hi\n")
    return path


def job_args(script_file: Path, /, **overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "job_id": "nightly-report",
        "name": "Nightly report",
        "schedule": "0 3 * * *",
        "script": str(script_file),
        "cwd": script_file.parent,
        "now": NOW,
    }
    args.update(overrides)
    return args


def rule_error(**kwargs: Any) -> str:
    with pytest.raises(JobRuleError) as caught:
        build_job(**kwargs)
    return str(caught.value)


# --- id -------------------------------------------------------------------------------------


@pytest.mark.parametrize("job_id", ["a", "nightly-report", "v1.2_beta", "A-Z.0_9"])
def test_good_ids_pass(job_id: str) -> None:
    assert check_job_id(job_id) == job_id


def test_an_empty_id_is_refused() -> None:
    with pytest.raises(JobRuleError, match=r"^id: must not be empty$"):
        check_job_id("")


@pytest.mark.parametrize("job_id", ["has space", "a/b", "semi;colon", "näive", "x\n", "\nx", "a*"])
def test_an_id_with_other_characters_is_refused(job_id: str) -> None:
    with pytest.raises(JobRuleError) as caught:
        check_job_id(job_id)
    assert str(caught.value) == f"id: {job_id!r} may hold only letters, digits, '-', '_' and '.'"


# --- schedule -------------------------------------------------------------------------------


def test_a_valid_schedule_passes() -> None:
    assert check_schedule("*/5 * * * *") == "*/5 * * * *"
    assert check_schedule("@daily") == "@daily"


@pytest.mark.parametrize("expression", ["61 * * * *", "* * *", "", "@reboot", "* * * * MOO"])
def test_an_invalid_schedule_carries_the_cron_modules_message(expression: str) -> None:
    with pytest.raises(InvalidSchedule) as cron_error:
        parse(expression)
    with pytest.raises(JobRuleError) as caught:
        check_schedule(expression)
    assert str(caught.value) == f"schedule: {cron_error.value}"


# --- script ---------------------------------------------------------------------------------


def test_a_relative_script_is_resolved_against_cwd(script: Path) -> None:
    resolved = resolve_script("job.sh", JobType.SCRIPT, script.parent)
    assert resolved == str(script.resolve())
    nested = script.parent / "sub"
    nested.mkdir()
    assert resolve_script("../job.sh", JobType.SCRIPT, nested) == str(script.resolve())


def test_an_absolute_script_is_kept(script: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert resolve_script(str(script), JobType.SCRIPT, elsewhere) == str(script)


def test_a_missing_script_is_refused(tmp_path: Path) -> None:
    with pytest.raises(JobRuleError) as caught:
        resolve_script("missing.py", JobType.SCRIPT, tmp_path)
    assert str(caught.value) == f"script: {tmp_path.resolve() / 'missing.py'} does not exist"


def test_a_folder_is_not_a_script(tmp_path: Path) -> None:
    (tmp_path / "dir.sh").mkdir()
    with pytest.raises(JobRuleError) as caught:
        resolve_script("dir.sh", JobType.SCRIPT, tmp_path)
    assert str(caught.value) == f"script: {tmp_path.resolve() / 'dir.sh'} is not a file"


@pytest.mark.parametrize("text", ["", "   "])
def test_an_empty_script_is_refused(text: str, tmp_path: Path) -> None:
    for kind in JobType:
        with pytest.raises(JobRuleError, match=r"^script: must not be empty$"):
            resolve_script(text, kind, tmp_path)


def test_a_session_takes_prompt_text_as_it_is(tmp_path: Path) -> None:
    prompt = "Summarise yesterday's alerts\nand post them."
    assert resolve_script(prompt, JobType.SESSION, tmp_path) == prompt


def test_a_session_prompt_file_must_exist_and_is_made_absolute(tmp_path: Path) -> None:
    (tmp_path / "prompt.md").write_text("Do the thing.")
    assert resolve_script("prompt.md", JobType.SESSION, tmp_path) == str(
        tmp_path.resolve() / "prompt.md"
    )
    with pytest.raises(JobRuleError) as caught:
        resolve_script("other.txt", JobType.SESSION, tmp_path)
    assert (
        str(caught.value)
        == f"script: prompt file {tmp_path.resolve() / 'other.txt'} does not exist"
    )


@pytest.mark.parametrize("name", ["run.js", "run.py", "RUN.SH", "x.ps1", "x.bat"])
def test_a_session_refuses_a_script_file(name: str, tmp_path: Path) -> None:
    with pytest.raises(JobRuleError) as caught:
        resolve_script(name, JobType.SESSION, tmp_path)
    assert str(caught.value) == (
        f"script: a session job takes prompt text or a .md/.txt file, not {name!r}"
    )


# --- build_job ------------------------------------------------------------------------------


def test_build_job_with_every_field(script: Path) -> None:
    job = build_job(
        **job_args(
            script,
            script="job.sh",
            job_type="script",
            description="Sends the report",
            timeout_ms=60_000,
            overlap="queue",
            on_failure="C-FAIL",
            on_success="C-OK",
            enabled=False,
        )
    )
    assert job.id == "nightly-report"
    assert job.name == "Nightly report"
    assert job.schedule == "0 3 * * *"
    assert job.script == str(script.resolve())
    assert job.type is JobType.SCRIPT
    assert job.description == "Sends the report"
    assert job.timeout_ms == 60_000
    assert job.overlap_policy is OverlapPolicy.QUEUE
    assert job.on_failure == "C-FAIL"
    assert job.on_success == "C-OK"
    assert job.enabled is False


def test_build_job_defaults(script: Path) -> None:
    job = build_job(**job_args(script, on_failure="", on_success=""))
    assert job.type is JobType.SCRIPT
    assert job.overlap_policy is OverlapPolicy.SKIP
    assert job.timeout_ms is None
    assert job.enabled is True
    # an empty channel means "none", not a channel called ""
    assert job.on_failure is None
    assert job.on_success is None


@pytest.mark.parametrize("policy", ["skip", "queue", "allow"])
def test_every_overlap_policy_is_accepted(policy: str, script: Path) -> None:
    assert build_job(**job_args(script, overlap=policy)).overlap_policy == OverlapPolicy(policy)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"job_id": ""}, "id: must not be empty"),
        ({"job_id": "bad id"}, "id: 'bad id' may hold only letters, digits, '-', '_' and '.'"),
        ({"name": "  "}, "name: must not be empty"),
        ({"job_type": "shell"}, "type: must be script or session, got 'shell'"),
        ({"overlap": "never"}, "overlap: must be skip, queue or allow, got 'never'"),
        ({"overlap": "SKIP"}, "overlap: must be skip, queue or allow, got 'SKIP'"),
        ({"timeout_ms": 0}, "timeout: must be a positive number of milliseconds, got 0"),
        ({"timeout_ms": -5}, "timeout: must be a positive number of milliseconds, got -5"),
    ],
)
def test_build_job_refuses_bad_fields(
    overrides: dict[str, Any], message: str, script: Path
) -> None:
    assert rule_error(**job_args(script, **overrides)) == message


def test_build_job_refuses_a_bad_schedule_with_the_cron_message(script: Path) -> None:
    with pytest.raises(InvalidSchedule) as cron_error:
        parse("99 * * * *")
    assert rule_error(**job_args(script, schedule="99 * * * *")) == f"schedule: {cron_error.value}"


def test_build_job_refuses_a_missing_script(tmp_path: Path) -> None:
    message = rule_error(**job_args(tmp_path / "gone.sh", cwd=tmp_path))
    assert message == f"script: {tmp_path / 'gone.sh'} does not exist"


def test_build_job_session_keeps_the_prompt(script: Path) -> None:
    job = build_job(**job_args(script, job_type="session", script="Check the inbox."))
    assert job.type is JobType.SESSION
    assert job.script == "Check the inbox."


def test_a_script_path_the_os_refuses_is_a_rule_error(tmp_path: Path) -> None:
    with pytest.raises(JobRuleError, match=r"^script: cannot check .*File name too long"):
        resolve_script("/" + "a" * 5000 + ".sh", JobType.SCRIPT, tmp_path)


# --- ids that look like folders, long ids, schedules that never fire -----------------------


@pytest.mark.parametrize("job_id", [".", ".."])
def test_dot_ids_are_refused(job_id: str) -> None:
    with pytest.raises(JobRuleError) as caught:
        check_job_id(job_id)
    assert str(caught.value) == f"id: {job_id!r} is not allowed"


def test_ids_longer_than_128_characters_are_refused() -> None:
    assert check_job_id("a" * 128) == "a" * 128
    with pytest.raises(JobRuleError) as caught:
        check_job_id("a" * 129)
    assert str(caught.value) == "id: must be at most 128 characters, got 129"


@pytest.mark.parametrize("expression", ["0 0 31 2 *", "0 0 0 1 1 * 1999"])
def test_a_schedule_that_never_fires_is_refused_with_the_next_runs_sentence(
    expression: str, script: Path
) -> None:
    assert check_schedule(expression) == expression  # valid as an expression
    assert rule_error(**job_args(script, schedule=expression)) == (
        "schedule: This schedule never fires."
    )


def test_a_schedule_whose_last_fire_is_still_ahead_passes(script: Path) -> None:
    job = build_job(**job_args(script, schedule="0 0 0 1 1 * 2027"))
    assert job.schedule == "0 0 0 1 1 * 2027"


def test_args_with_a_command_are_refused() -> None:
    error = rule_error(
        job_id="c", name="C", schedule="@daily", script=None, cwd=Path("/"), now=NOW,
        command=["echo"], args=["x"],
    )  # fmt: skip
    assert error == "args: are for a script; put a command's arguments in the command"


# ---- issue 13's policies ------------------------------------------------------------------


def test_policies_given_are_typed_and_the_rest_keep_their_defaults(script: Path) -> None:
    policies = {"retries": 3, "retry_on": ["timeout", 75, "3"], "catchup": "all", "notify": None}
    job = build_job(**job_args(script, policies=policies))
    assert (job.retries, job.retry_on, job.catchup) == (3, ("timeout", "75", "3"), "all")
    assert (job.retry_delay_ms, job.retry_backoff, job.notify) == (10_000, 2.0, "change")
    assert build_job(**job_args(script, policies={"retry_backoff": 3})).retry_backoff == 3.0
    assert build_job(**job_args(script, policies={"retry_on": "error"})).retry_on == ("error",)


@pytest.mark.parametrize(
    ("policies", "message"),
    [
        ({"retries": -1}, "retries: must be between 0 and 100, got -1"),
        ({"retries": "3"}, 'retries: must be a whole number, got "3"'),
        ({"retries": True}, "retries: must be a whole number, got true"),
        (
            {"retry_delay_ms": 1.5},
            "retry_delay_ms: must be a whole number of milliseconds, got 1.5",
        ),
        ({"retry_backoff": 0.5}, "retry_backoff: must be between 1 and 100, got 0.5"),
        ({"retry_backoff": "2"}, 'retry_backoff: must be a number, got "2"'),
        (
            {"retry_delay_ms": 5000, "retry_max_delay_ms": 1000},
            "retry_max_delay_ms: must not be less than retry_delay_ms (5000), got 1000",
        ),
        ({"retry_on": []}, "retry_on: must be a list of 'error', 'timeout' and exit codes, got []"),
        (
            {"retry_on": ["errors"]},
            "retry_on: \"errors\" is not 'error', 'timeout' or an exit code (1-255)",
        ),
        ({"retry_on": [0]}, "retry_on: 0 is not 'error', 'timeout' or an exit code (1-255)"),
        ({"retry_on": [256]}, "retry_on: 256 is not 'error', 'timeout' or an exit code (1-255)"),
        ({"catchup": "every"}, 'catchup: must be skip, once or all, got "every"'),
        ({"catchup_max": 0}, "catchup_max: must be between 1 and 1000, got 0"),
        (
            {"catchup_window_ms": 0},
            "catchup_window_ms: must be between 1 and 31622400000 of milliseconds, got 0",
        ),
        ({"notify": "never"}, 'notify: must be always or change, got "never"'),
        ({"notify_repeat": 0}, "notify_repeat: must be between 1 and 1000000, got 0"),
        (
            {"max_duration_ms": -5},
            "max_duration_ms: must be between 1 and 31622400000 of milliseconds, got -5",
        ),
    ],
)
def test_bad_policies_are_refused_naming_the_field(
    script: Path, policies: dict[str, object], message: str
) -> None:
    with pytest.raises(JobRuleError) as caught:
        build_job(**job_args(script, policies=policies))
    assert str(caught.value) == message
