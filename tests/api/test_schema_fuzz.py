"""Schemathesis over the app's own /openapi.json, against the live server: whatever it sends,
no answer is a 5xx and every answer matches the schema (status, content type, body)."""

from __future__ import annotations

from typing import Any, cast

import httpx
import pytest
import schemathesis
from fake_control import FakeControl
from hypothesis import HealthCheck, given, settings
from live_api import LiveApi
from schemathesis.checks import positive_data_acceptance
from schemathesis.schemas import APIOperation

from jeeves_runner.api.app import create_app
from jeeves_runner.control import RunnerControl
from jeeves_runner.models import OverlapPolicy

# The schema is read from an app built here: it does not depend on what stands behind the app,
# and test_schema_documents_every_route checks the live server serves the same one.
# (schemathesis.pytest.from_fixture would read it from the live server, but fails on pytest 9:
# it reads the removed `Function._nodeid`.)
schema = schemathesis.openapi.from_dict(create_app(cast(RunnerControl, None)).openapi())


@pytest.fixture
def seeded_api(live_api: LiveApi, control: FakeControl) -> LiveApi:
    # A few real jobs, so the generated ids are not the only thing the API ever sees.
    control.add_job("nightly")
    control.add_job("par", overlap_policy=OverlapPolicy.ALLOW, enabled=False)
    return live_api


# One test per operation, each with its own id (schemathesis's `schema.parametrize()` gives
# all 27 one id, and pytest-xdist then runs only one of them).
OPERATIONS = [result.ok() for result in schema.get_all_operations()]


@pytest.mark.slow
@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_api_conforms_to_its_schema(operation: APIOperation, seeded_api: LiveApi) -> None:
    # A job body that fits the schema may still be refused with 400: whether its script
    # exists or its cron expression parses is not something JSON Schema can say.
    @given(case=operation.as_strategy())
    @settings(
        max_examples=50,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        database=None,
    )
    def conforms(case: schemathesis.Case[Any]) -> None:
        excluded = [positive_data_acceptance] if _has_job_body(case) else []
        case.call_and_validate(base_url=seeded_api.url, excluded_checks=excluded)

    conforms()


def _has_job_body(case: schemathesis.Case[Any]) -> bool:
    return (case.method.upper(), case.path) in {("POST", "/jobs"), ("PATCH", "/jobs/{job_id}")}


def test_schema_documents_every_route(live_api: LiveApi) -> None:
    document = httpx.get(f"{live_api.url}/openapi.json").json()
    assert document == schema.raw_schema
    assert document["info"]["title"] == "jeeves-runner"
    paths = document["paths"]
    for path, method, codes in [
        ("/jobs", "get", {"200"}),
        ("/jobs/{job_id}", "get", {"200", "404"}),
        ("/jobs/{job_id}/runs", "get", {"200", "400", "404"}),
        ("/jobs/{job_id}/run", "post", {"200", "404", "409", "503"}),
        ("/jobs/{job_id}/enable", "post", {"200", "404"}),
        ("/jobs/{job_id}/disable", "post", {"200", "404"}),
        ("/jobs", "post", {"201", "400", "409", "503"}),
        ("/jobs/{job_id}", "patch", {"200", "400", "404", "503"}),
        ("/jobs/{job_id}", "delete", {"200", "400", "404", "409", "503"}),
        ("/jobs/{job_id}/enable", "patch", {"200", "404"}),
        ("/jobs/{job_id}/disable", "patch", {"200", "404"}),
        ("/jobs/{job_id}/next", "get", {"200", "400", "404"}),
        ("/health", "get", {"200"}),
        ("/stats", "get", {"200"}),
    ]:
        assert set(paths[path][method]["responses"]) >= codes, (path, method)
        # FastAPI's own 422 shape is never sent: validation failures are 400 {"error"}.
        assert "422" not in paths[path][method]["responses"]
    limit = next(
        p for p in paths["/jobs/{job_id}/runs"]["get"]["parameters"] if p["name"] == "limit"
    )
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}
    schemas = document["components"]["schemas"]
    assert schemas["ErrorBody"]["required"] == ["error"]
    assert "HTTPValidationError" not in schemas
    assert schemas["JobListItem"]["properties"]["enabled"]["type"] == "integer"
