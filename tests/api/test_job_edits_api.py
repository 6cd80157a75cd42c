"""POST /jobs, PATCH /jobs/:id, DELETE /jobs/:id and PATCH enable/disable, against the real
server on 127.0.0.1 over a real store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_control import INSTANT, FakeControl
from live_api import Background, wait_for

JOB_NOT_FOUND = {"error": "Job not found"}


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "job.sh"
    path.write_text("#!/bin/sh\necho hi\n")
    return path


def new_job(script: Path, /, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "nightly",
        "name": "Nightly report",
        "schedule": "0 3 * * *",
        "script": str(script),
    }
    body.update(overrides)
    return body


def error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    return str(body["error"])


# ---- POST /jobs --------------------------------------------------------------------------


def test_create_answers_201_with_the_job_as_get_shows_it(
    client: httpx.Client, control: FakeControl, script: Path
) -> None:
    response = client.post("/jobs", json=new_job(script, timeout_ms=5000, on_failure="C1"))
    assert response.status_code == 201
    job = response.json()["job"]
    assert job == client.get("/jobs/nightly").json()["job"]
    assert job["script"] == str(script)
    assert job["enabled"] == 1
    assert job["timeout_ms"] == 5000
    assert job["on_failure"] == "C1"
    assert job["type"] == "script"
    assert job["overlap_policy"] == "skip"
    assert INSTANT.match(job["created_at"])
    assert control.changed_jobs == ["nightly"]


def test_create_of_an_existing_id_is_409(
    client: httpx.Client, control: FakeControl, script: Path
) -> None:
    control.add_job("nightly")
    response = client.post("/jobs", json=new_job(script))
    assert error(response, 409) == "Job 'nightly' already exists"


def test_create_a_session_job_with_prompt_text(client: httpx.Client) -> None:
    body = {"id": "s", "name": "S", "schedule": "@daily", "type": "session", "script": "Hi"}
    response = client.post("/jobs", json=body)
    assert response.status_code == 201
    assert response.json()["job"]["script"] == "Hi"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"schedul": "x"}, "schedul: unknown field (did you mean 'schedule'?)"),
        ({"colour": "x"}, "colour: unknown field"),
        ({"schedule": "0 0 31 2 *"}, "schedule: This schedule never fires."),
        ({"schedule": "61 * * * *"}, None),
        ({"id": ".."}, "id: '..' is not allowed"),
        ({"id": "a" * 129}, "id: must be at most 128 characters, got 129"),
        ({"id": "a b"}, "id: 'a b' may hold only letters, digits, '-', '_' and '.'"),
        ({"script": "job.sh"}, "script: must be an absolute path, got 'job.sh'"),
        ({"script": "/nope/job.sh"}, "script: /nope/job.sh does not exist"),
        (
            {"timeout_ms": "5"},
            'timeout_ms: must be an integer number of milliseconds or null, got "5"',
        ),
        ({"timeout_ms": 0}, "timeout_ms: must be a positive number of milliseconds, got 0"),
        (
            {"overlap_policy": "twice"},
            "overlap_policy: must be 'skip', 'queue' or 'allow', got \"twice\"",
        ),
        ({"enabled": "yes"}, 'enabled: must be true, false, 1 or 0, got "yes"'),
        ({"name": None}, "name: must not be null"),
        ({"name": 5}, "name: must be a string, got 5"),
        (
            {"created_at": "2026-01-01T00:00:00.000Z"},
            "created_at: is set by the runner and cannot be given",
        ),
    ],
)
def test_create_refuses_bad_fields_naming_them(
    client: httpx.Client, script: Path, overrides: dict[str, Any], message: str | None
) -> None:
    text = error(client.post("/jobs", json=new_job(script, **overrides)), 400)
    if message is None:
        assert text.startswith("schedule: ")
    else:
        assert text == message
    assert client.get("/jobs").json() == {"jobs": []}


def test_create_names_a_missing_field(client: httpx.Client, script: Path) -> None:
    body = new_job(script)
    del body["schedule"]
    assert error(client.post("/jobs", json=body), 400) == "schedule: is required"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{", "Request body is not valid JSON"),
        (b"[1]", "The request body must be a JSON object"),
        (b"", "Request body is not valid JSON"),
    ],
)
def test_create_refuses_a_body_that_is_not_an_object(
    client: httpx.Client, content: bytes, message: str
) -> None:
    response = client.post("/jobs", content=content, headers={"content-type": "application/json"})
    assert error(response, 400) == message


# ---- PATCH /jobs/:id ---------------------------------------------------------------------


def test_patch_changes_only_the_fields_given(
    client: httpx.Client, control: FakeControl, script: Path
) -> None:
    client.post("/jobs", json=new_job(script, description="first", timeout_ms=1000))
    response = client.patch("/jobs/nightly", json={"schedule": "*/5 * * * *", "timeout_ms": None})
    assert response.status_code == 200
    job = response.json()["job"]
    assert job == client.get("/jobs/nightly").json()["job"]
    assert job["schedule"] == "*/5 * * * *"
    assert job["timeout_ms"] is None
    assert job["description"] == "first"
    assert job["name"] == "Nightly report"
    assert control.changed_jobs == ["nightly", "nightly"]


def test_patch_of_an_unknown_job_is_404(client: httpx.Client) -> None:
    response = client.patch("/jobs/ghost", json={"name": "x"})
    assert response.status_code == 404
    assert response.json() == JOB_NOT_FOUND


def test_patch_applies_the_add_job_rules(client: httpx.Client, script: Path) -> None:
    client.post("/jobs", json=new_job(script))
    response = client.patch("/jobs/nightly", json={"schedule": "0 0 0 1 1 * 1999"})
    assert error(response, 400) == "schedule: This schedule never fires."
    assert error(client.patch("/jobs/nightly", json={"nmae": "x"}), 400) == (
        "nmae: unknown field (did you mean 'name'?)"
    )
    assert error(client.patch("/jobs/nightly", json={"id": "other"}), 400) == (
        "id: cannot be changed (the path names the job)"
    )
    assert client.get("/jobs/nightly").json()["job"]["schedule"] == "0 3 * * *"


def test_patch_takes_enabled_as_get_shows_it(client: httpx.Client, script: Path) -> None:
    client.post("/jobs", json=new_job(script))
    assert client.patch("/jobs/nightly", json={"enabled": 0}).json()["job"]["enabled"] == 0
    assert client.patch("/jobs/nightly", json={"enabled": True}).json()["job"]["enabled"] == 1


# ---- DELETE /jobs/:id --------------------------------------------------------------------


def test_delete_removes_the_job_and_its_runs(client: httpx.Client, control: FakeControl) -> None:
    control.add_job("old")
    control.add_job("kept")
    assert client.post("/jobs/old/run").status_code == 200
    response = client.delete("/jobs/old")
    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert client.get("/jobs/old").status_code == 404
    assert client.get("/jobs/old/runs").status_code == 404
    assert [j["id"] for j in client.get("/jobs").json()["jobs"]] == ["kept"]
    assert control.changed_jobs == ["old"]


def test_delete_of_an_unknown_job_is_404(client: httpx.Client) -> None:
    response = client.delete("/jobs/ghost")
    assert response.status_code == 404
    assert response.json() == JOB_NOT_FOUND


def test_delete_refuses_a_job_with_a_run_in_flight_unless_forced(
    client: httpx.Client, control: FakeControl, live_api: Any
) -> None:
    control.add_job("busy")
    control.hold("busy")
    run = Background(live_api.url, "POST", "/jobs/busy/run")
    wait_for(lambda: control.running_count == 1, "the run to start")
    assert error(client.delete("/jobs/busy"), 409) == "Job 'busy' has a run in flight"
    assert client.get("/jobs/busy").status_code == 200
    assert error(client.delete("/jobs/busy?force=yes"), 400) == "force must be true or false"
    response = client.delete("/jobs/busy?force=true")
    assert response.status_code == 200
    assert control.forced_deletes == ["busy"]
    assert client.get("/jobs/busy").status_code == 404
    assert run.result().status_code == 200


# ---- PATCH enable / disable ----------------------------------------------------------------


def test_patch_enable_and_disable_work_as_the_post_ones(
    client: httpx.Client, control: FakeControl
) -> None:
    control.add_job("j")
    assert client.patch("/jobs/j/disable").json() == {"ok": True}
    assert client.get("/jobs/j").json()["job"]["enabled"] == 0
    assert client.patch("/jobs/j/enable").json() == {"ok": True}
    assert client.get("/jobs/j").json()["job"]["enabled"] == 1
    assert control.enabled_calls == [("j", False), ("j", True)]
    assert client.patch("/jobs/ghost/enable").json() == JOB_NOT_FOUND


# ---- what a job needs: command, args, env, cwd, timezone, tags -------------------------------


def test_create_with_every_run_field(client: httpx.Client, script: Path, tmp_path: Path) -> None:
    body = new_job(
        script,
        args=["--fast", "two words"],
        env={"GREETING": "hi"},
        cwd=str(tmp_path),
        timezone="Europe/London",
        tags=["nightly", "mail"],
        run_on=["node-a", "gpu"],
    )
    job = client.post("/jobs", json=body).json()["job"]
    assert job["run_on"] == ["node-a", "gpu"]
    assert job["args"] == ["--fast", "two words"]
    assert job["env"] == {"GREETING": "hi"}
    assert job["cwd"] == str(tmp_path)
    assert job["timezone"] == "Europe/London"
    assert job["tags"] == ["nightly", "mail"]
    assert job["command"] is None
    assert job["next_run"] == "2026-03-03T03:00:00.000Z"  # 03:00 in London (GMT in March)
    assert client.get("/jobs").json()["jobs"][0] == {**job, "last_status": None, "last_run": None}


def test_a_command_job_needs_no_script_and_patching_one_replaces_the_other(
    client: httpx.Client, script: Path
) -> None:
    body = {"id": "c", "name": "C", "schedule": "@daily", "command": ["echo", "hi"]}
    job = client.post("/jobs", json=body).json()["job"]
    assert (job["command"], job["script"]) == (["echo", "hi"], "")
    job = client.patch("/jobs/c", json={"script": str(script)}).json()["job"]
    assert (job["command"], job["script"]) == (None, str(script))
    job = client.patch("/jobs/c", json={"command": ["true"]}).json()["job"]
    assert (job["command"], job["script"]) == (["true"], "")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"env": {"A": 5}}, "env: the value of 'A' must be a string, got 5"),
        ({"env": ["A"]}, 'env: must be an object of names to strings, got ["A"]'),
        ({"args": "x"}, 'args: must be a list of strings, got "x"'),
        ({"args": ["x", 1]}, "args: must be a list of strings, got the item 1"),
        ({"tags": [None]}, "tags: must be a list of strings, got the item null"),
        ({"run_on": "a"}, 'run_on: must be a list of strings, got "a"'),
        (
            {"run_on": ["a b"]},
            "run_on: 'a b' is not a label (1-63 letters, digits, '_', '.', ':' or '-', "
            "starting with a letter or digit)",
        ),
        ({"timezone": "Mars/Base"}, "timezone: unknown time zone 'Mars/Base'"),
        ({"cwd": "rel"}, "cwd: must be an absolute path, got 'rel'"),
        ({"cwd": "/nope/at/all"}, "cwd: /nope/at/all does not exist"),
        ({"command": []}, "command: must name a program to run as its first item"),
        ({"command": ["echo"]}, "command: give a script or a command, not both"),
    ],
)
def test_run_fields_are_checked_naming_the_field(
    client: httpx.Client, script: Path, overrides: dict[str, Any], message: str
) -> None:
    assert error(client.post("/jobs", json=new_job(script, **overrides)), 400) == message


def test_cwd_that_is_a_file_is_refused(client: httpx.Client, script: Path) -> None:
    response = client.post("/jobs", json=new_job(script, cwd=str(script)))
    assert error(response, 400) == f"cwd: {script} is not a folder"


def test_a_job_without_script_or_command_is_refused(client: httpx.Client) -> None:
    body = {"id": "x", "name": "X", "schedule": "@daily"}
    assert error(client.post("/jobs", json=body), 400) == "script: is required (or give a command)"


# ---- next fires ------------------------------------------------------------------------------


def test_next_fires_in_the_jobs_zone(client: httpx.Client, script: Path) -> None:
    # The tests' clock stands at 2026-03-02 12:00 UTC; 03:00 in Tokyo is 18:00 UTC.
    client.post("/jobs", json=new_job(script, timezone="Asia/Tokyo"))
    assert client.get("/jobs/nightly/next?n=2").json() == {
        "next": ["2026-03-02T18:00:00.000Z", "2026-03-03T18:00:00.000Z"]
    }
    assert len(client.get("/jobs/nightly/next").json()["next"]) == 10
    assert client.get("/jobs/nightly").json()["job"]["next_run"] == "2026-03-02T18:00:00.000Z"
    client.post("/jobs/nightly/disable")
    assert client.get("/jobs/nightly/next").json() == {"next": []}
    assert client.get("/jobs/nightly").json()["job"]["next_run"] is None


@pytest.mark.parametrize("n", ["0", "101", "x", "1.5", "-1"])
def test_next_refuses_a_bad_n(client: httpx.Client, script: Path, n: str) -> None:
    client.post("/jobs", json=new_job(script))
    assert (
        error(client.get(f"/jobs/nightly/next?n={n}"), 400) == "n must be an integer from 1 to 100"
    )


def test_next_of_an_unknown_job_is_404(client: httpx.Client) -> None:
    assert client.get("/jobs/ghost/next").json() == JOB_NOT_FOUND


def test_list_jobs_by_tag(client: httpx.Client, script: Path) -> None:
    client.post("/jobs", json=new_job(script, id="a", tags=["mail", "nightly"]))
    client.post("/jobs", json=new_job(script, id="b", tags=["nightly"]))
    client.post("/jobs", json=new_job(script, id="c"))
    assert [j["id"] for j in client.get("/jobs?tag=nightly").json()["jobs"]] == ["a", "b"]
    assert [j["id"] for j in client.get("/jobs?tag=mail").json()["jobs"]] == ["a"]
    assert client.get("/jobs?tag=none").json() == {"jobs": []}
    assert [j["id"] for j in client.get("/jobs").json()["jobs"]] == ["a", "b", "c"]


def test_a_job_from_a_file_refuses_api_edits(client: httpx.Client, control: FakeControl) -> None:
    control.add_job("f", source="/etc/jobs/f.toml")
    managed = "Job 'f' is managed by /etc/jobs/f.toml"
    assert error(client.patch("/jobs/f", json={"name": "x"}), 409) == managed
    assert error(client.delete("/jobs/f"), 409) == managed
    assert client.get("/jobs/f").json()["job"]["source"] == "/etc/jobs/f.toml"


def test_a_busy_database_is_503(
    client: httpx.Client, control: FakeControl, script: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jeeves_runner.models import Job
    from jeeves_runner.store.errors import DatabaseBusyError

    async def busy(job: Job) -> dict[str, Any]:
        raise DatabaseBusyError()

    monkeypatch.setattr(control, "create_job", busy)
    response = client.post("/jobs", json=new_job(script))
    assert error(response, 503) == "The database is busy; try again"


def test_read_only_fields_cannot_be_patched(client: httpx.Client, control: FakeControl) -> None:
    control.add_job("j")
    assert error(client.patch("/jobs/j", json={"source": "/x.toml"}), 400) == (
        "source: is set by the runner and cannot be given"
    )


# ---- issue 13's policies ------------------------------------------------------------------


def test_create_and_patch_take_the_policy_fields(client: httpx.Client, script: Path) -> None:
    body = new_job(script, retries=2, retry_delay_ms=500, retry_on=["timeout", 3], catchup="once")
    job = client.post("/jobs", json=body).json()["job"]
    assert (job["retries"], job["retry_delay_ms"], job["retry_on"]) == (2, 500, ["timeout", "3"])
    assert (job["catchup"], job["catchup_max"], job["notify"]) == ("once", 10, "change")
    assert job == client.get("/jobs/nightly").json()["job"]
    patched = client.patch("/jobs/nightly", json={"catchup": "all", "max_duration_ms": 9000})
    job = patched.json()["job"]
    assert (job["catchup"], job["max_duration_ms"], job["retries"]) == ("all", 9000, 2)
    cleared = client.patch("/jobs/nightly", json={"max_duration_ms": None}).json()["job"]
    assert cleared["max_duration_ms"] is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"retries": "2"}, 'retries: must be a whole number, got "2"'),
        ({"retries": None}, "retries: must not be null"),
        ({"catchup": "every"}, 'catchup: must be skip, once or all, got "every"'),
        (
            {"retry_on": ["oops"]},
            "retry_on: \"oops\" is not 'error', 'timeout' or an exit code (1-255)",
        ),
        ({"retrys": 3}, "retrys: unknown field (did you mean 'retries'?)"),
    ],
)
def test_bad_policy_fields_are_400s_naming_them(
    client: httpx.Client, script: Path, fields: dict[str, Any], message: str
) -> None:
    assert error(client.post("/jobs", json=new_job(script, **fields)), 400) == message
