"""queue_model: dedup keys taken from a payload by a JSONPath expression."""

from __future__ import annotations

from typing import Any

import pytest

from jeeves_runner.queue_model import DedupExpressionError, check_dedup_expr, dedup_key


@pytest.mark.parametrize(
    ("expr", "payload", "key"),
    [
        ("$.url", {"url": "https://x"}, "https://x"),  # a string is the key as is
        ("$.n", {"n": 5}, "5"),
        ("$.obj", {"obj": {"b": 1, "a": 2}}, '{"a":2,"b":1}'),  # canonical JSON
        ("$.tags[*]", {"tags": ["x", "y"]}, '["x","y"]'),  # several matches: all of them
        ("$.missing", {"url": "x"}, None),  # no match: no key, never a duplicate
        ("$.url", {"url": ""}, None),
        ("$.n", {"n": None}, "null"),
        ("$.url", "not an object", None),
    ],
)
def test_dedup_key(expr: str, payload: Any, key: str | None) -> None:
    assert dedup_key(expr, payload) == key


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("$.[", "dedup expression '$.[' is not valid JSONPath: expected a shorthand selector"),
        ("  ", "dedup expression must not be empty"),
    ],
)
def test_bad_dedup_expressions_are_refused_with_the_reason(expr: str, message: str) -> None:
    with pytest.raises(DedupExpressionError) as caught:
        check_dedup_expr(expr)
    assert str(caught.value) == message
