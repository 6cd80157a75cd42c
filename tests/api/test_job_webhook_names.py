"""A job's on_failure/on_success may name a configured webhook (`webhook:NAME`); an unknown
name is a 400 that says which, on create and on edit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_control import FakeControl
from live_api import LiveApi

from jeeves_runner.api.app import create_app
from jeeves_runner.clock import FakeClock

WEBHOOKS = ["pager", "audit"]


@pytest.fixture
def http(control: FakeControl, clock: FakeClock) -> Iterator[httpx.Client]:
    app = create_app(control, clock=clock, webhook_names=lambda: list(WEBHOOKS))
    with LiveApi(app) as api, httpx.Client(base_url=api.url, timeout=10) as client:
        yield client


def new_job(tmp_path: Path) -> dict[str, Any]:
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    return {"id": "nightly", "name": "Nightly", "schedule": "0 3 * * *", "script": str(script)}


def test_a_known_webhook_is_taken(http: httpx.Client, tmp_path: Path) -> None:
    body = new_job(tmp_path) | {"on_failure": "webhook:pager", "on_success": "C-DONE"}
    response = http.post("/jobs", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["job"]["on_failure"] == "webhook:pager"


@pytest.mark.parametrize("field", ["on_failure", "on_success"])
def test_an_unknown_webhook_is_a_400_naming_it(
    http: httpx.Client, tmp_path: Path, field: str
) -> None:
    response = http.post("/jobs", json=new_job(tmp_path) | {field: "webhook:pagr"})
    assert response.status_code == 400
    assert response.json() == {
        "error": f'{field}: no webhook named "pagr" in notifications.webhooks (known: pager, audit)'
    }
    assert http.get("/jobs/nightly").status_code == 404


def test_an_edit_to_an_unknown_webhook_is_refused(http: httpx.Client, tmp_path: Path) -> None:
    assert http.post("/jobs", json=new_job(tmp_path)).status_code == 201
    response = http.patch("/jobs/nightly", json={"on_failure": "webhook:gone"})
    assert response.status_code == 400
    assert response.json()["error"].startswith('on_failure: no webhook named "gone"')


def test_without_webhooks_configured_the_message_says_so(
    client: httpx.Client, tmp_path: Path
) -> None:
    response = client.post("/jobs", json=new_job(tmp_path) | {"on_failure": "webhook:x"})
    assert response.status_code == 400
    assert response.json()["error"] == (
        'on_failure: no webhook named "x" in notifications.webhooks (known: none are configured)'
    )
