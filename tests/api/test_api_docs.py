"""docs/api.md names every route the app serves (issue 15: the project's own API reference)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
PARAMS = {"job_id": "id", "run_id": "id", "queue_id": "id", "namespace": "namespace", "key": "key"}


def test_every_route_of_the_openapi_document_is_in_docs_api_md(client: httpx.Client) -> None:
    text = DOC.read_text("utf-8")
    headings = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    missing = []
    for template, operations in client.get("/openapi.json").json()["paths"].items():
        path = re.sub(r"\{(\w+)\}", lambda m: ":" + PARAMS.get(m.group(1), m.group(1)), template)
        for method in operations:
            if method.upper() == "HEAD":
                continue
            if f"`{method.upper()} {path}" not in text and path not in headings:
                missing.append(f"{method.upper()} {path}")
    assert missing == []
