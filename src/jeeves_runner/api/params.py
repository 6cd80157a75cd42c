"""What the routers share: the `limit` query parameter, the error body, JSON responses."""

from __future__ import annotations

import json
import re
from http import HTTPStatus
from typing import Annotated, Any

import orjson
from fastapi import Query, Request, Response
from pydantic import BaseModel

from jeeves_runner.api.errors import ApiError

JSON = "application/json"
LIMIT_DEFAULT = 50
LIMIT_MAX = 1000
LIMIT_ERROR = f"limit must be an integer from 1 to {LIMIT_MAX}"

# ASCII digits only: int() would also take " 5", "+5", "5_0" and "٥", none of which is what a
# caller who sends them means. Seven digits bound the work whatever the caller sends.
_DIGITS = re.compile(r"[0-9]{1,7}")


class ErrorBody(BaseModel):
    """Every error the API answers: one sentence."""

    error: str


_DESCRIPTIONS = {
    400: "Invalid request: the message names the parameter or the problem",
    401: "A valid token is required (some token exists)",
    403: "The token's scope is too low, or the request came from another web origin",
    404: "Not found",
    409: "The job is already running and its overlap policy is skip",
    503: "The runner is shutting down",
}


def json_response(body: Any, status_code: int = 200) -> Response:
    """A JSON body encoded by orjson, without response-model validation (the hot path)."""
    try:
        content = orjson.dumps(body)
    except TypeError:
        # orjson refuses integers beyond 64 bits, which job scripts may legally put in a
        # queue payload or a state value; the standard encoder writes them as they are.
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(content=content, status_code=status_code, media_type=JSON)


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: the given error statuses, each with the error body."""
    return {
        code: {"model": ErrorBody, "description": _DESCRIPTIONS.get(code, HTTPStatus(code).phrase)}
        for code in codes
    }


def parse_limit(text: str | None, default: int = LIMIT_DEFAULT) -> int:
    if text is None:
        return default
    if not _DIGITS.fullmatch(text):
        raise ApiError(400, LIMIT_ERROR)
    value = int(text)
    if not 1 <= value <= LIMIT_MAX:
        raise ApiError(400, LIMIT_ERROR)
    return value


def limit_schema(schema: dict[str, Any]) -> None:
    # The parameter is taken as text (see limit_param); clients are told what it means.
    schema.clear()
    schema.update({"type": "integer", "minimum": 1, "maximum": LIMIT_MAX})


async def limit_param(
    # Taken as text and parsed here, so any bad value gets the one sentence above rather than a
    # generic validation error. Async: FastAPI runs a plain-function dependency in a thread.
    limit: Annotated[
        str | None,
        Query(
            description=f"Most items to return: 1 to {LIMIT_MAX}, {LIMIT_DEFAULT} when omitted.",
            json_schema_extra=limit_schema,
        ),
    ] = None,
) -> int:
    """`limit` as a FastAPI dependency. Hot routes use limit_from() instead."""
    return parse_limit(limit)


def limit_from(request: Request) -> int:
    """The `limit` query parameter of a list route; document it with
    `openapi_extra=LIMIT_OPENAPI`.

    Read here rather than declared as a FastAPI parameter: dependency solving costs more than
    the rest of a short read, and any bad value gets the one sentence above rather than a
    generic validation error.
    """
    return parse_limit(request.query_params.get("limit"))


LIMIT_OPENAPI: dict[str, Any] = {
    "parameters": [
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "description": f"Most items to return: 1 to {LIMIT_MAX}, {LIMIT_DEFAULT} when omitted.",
            "schema": {
                "type": "integer",
                "minimum": 1,
                "maximum": LIMIT_MAX,
                "default": LIMIT_DEFAULT,
            },
        }
    ]
}
