"""execution/child_env.py: what a job inherits of the runner's environment."""

from __future__ import annotations

from jeeves_runner.execution.child_env import GATEWAY_TOKEN_ENV, child_environment

BASE = {
    "PATH": "/usr/bin",
    "HOME": "/home/jr",
    "OPENCLAW_GATEWAY_TOKEN": "gw-secret",
    "SLACK_TOKEN": "xoxb-secret",
    "slack_token": "lower case is another variable",
    "AWS_SECRET_ACCESS_KEY": "aws-secret",
}


def test_the_gateway_token_is_always_withheld() -> None:
    assert GATEWAY_TOKEN_ENV == "OPENCLAW_GATEWAY_TOKEN"
    env = child_environment(BASE, [])
    assert "OPENCLAW_GATEWAY_TOKEN" not in env
    assert env == {k: v for k, v in BASE.items() if k != "OPENCLAW_GATEWAY_TOKEN"}


def test_named_secrets_are_withheld_and_everything_else_kept() -> None:
    env = child_environment(BASE, ["SLACK_TOKEN", "AWS_SECRET_ACCESS_KEY", "NOT_SET"])
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/home/jr",
        "slack_token": "lower case is another variable",  # names match exactly
    }


def test_the_base_is_not_changed_and_any_iterable_will_do() -> None:
    before = dict(BASE)
    env = child_environment(BASE, (name for name in ["HOME"]))
    assert before == BASE
    assert "HOME" not in env and env["PATH"] == "/usr/bin"
    env["NEW"] = "x"  # a fresh dict, the caller's to change
    assert "NEW" not in BASE
