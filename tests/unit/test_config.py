"""config.py: defaults, every error path with its exact text, path anchoring, redaction."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from jeeves_runner.config import (
    DEFAULT_GATEWAY_URL,
    STARTER_CONFIG,
    Config,
    ConfigError,
    load_config,
    parse_config,
)


def problems_of(data: object) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "c.json")
    assert caught.value.source == "c.json"
    return caught.value.problems


def write(tmp_path: Path, content: str | dict[str, Any], name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), "utf-8")
    return path


# --- defaults and valid files -------------------------------------------------------------


def test_no_file_gives_the_documented_defaults() -> None:
    config = load_config(None)
    assert config == parse_config({})
    assert config.port == 1937
    assert config.host == "127.0.0.1"
    assert config.db_path == "./data/runner.sqlite"
    assert config.max_concurrency == 4
    assert config.run_retention_days == 30
    assert config.state_cleanup_interval_ms == 3_600_000
    assert config.shutdown_grace_ms == 30_000
    assert config.timezone is None
    assert config.reconcile_interval_ms == 60_000
    assert config.notifications.slack_token_path is None
    assert config.notifications.default_on_failure is None
    assert config.notifications.default_on_success is None
    assert config.log.level == "info"
    assert config.log.file is None
    assert config.gateway.url == DEFAULT_GATEWAY_URL == "http://127.0.0.1:18789"
    assert config.gateway.token_path is None
    assert config.secret_env == []


def test_every_key_is_read(tmp_path: Path) -> None:
    data = {
        "$schema": "https://example.com/jeeves-runner.schema.json",
        "port": 8080,
        "host": "0.0.0.0",
        "dbPath": "/var/lib/jr/runner.sqlite",
        "maxConcurrency": 2,
        "runRetentionDays": 7,
        "stateCleanupIntervalMs": 60_000,
        "shutdownGraceMs": 0,
        "timezone": "Europe/London",
        "reconcileIntervalMs": 0,
        "notifications": {
            "slackTokenPath": "/etc/jr/slack.token",
            "defaultOnFailure": "C-FAIL",
            "defaultOnSuccess": "C-OK",
        },
        "log": {"level": "debug", "file": "/var/log/jr.log"},
        "gateway": {"url": "http://gw:1", "tokenPath": "/etc/jr/gw.token"},
        "secretEnv": ["SLACK_BOT_TOKEN", "AWS_SECRET_ACCESS_KEY"],
    }
    config = load_config(write(tmp_path, data))
    assert config.port == 8080
    assert config.host == "0.0.0.0"
    assert config.db_path == "/var/lib/jr/runner.sqlite"
    assert config.max_concurrency == 2
    assert config.run_retention_days == 7
    assert config.state_cleanup_interval_ms == 60_000
    assert config.shutdown_grace_ms == 0
    assert config.timezone == "Europe/London"
    assert config.reconcile_interval_ms == 0
    assert config.notifications.slack_token_path == "/etc/jr/slack.token"
    assert config.notifications.default_on_failure == "C-FAIL"
    assert config.notifications.default_on_success == "C-OK"
    assert config.log.level == "debug"
    assert config.log.file == "/var/log/jr.log"
    assert config.gateway.url == "http://gw:1"
    assert config.gateway.token_path == "/etc/jr/gw.token"
    assert config.secret_env == ["SLACK_BOT_TOKEN", "AWS_SECRET_ACCESS_KEY"]


def test_schema_key_is_allowed_and_left_out_of_the_resolved_config() -> None:
    config = parse_config({"$schema": "./schema.json", "port": 2000})
    assert config.port == 2000
    assert "$schema" not in config.to_json_dict()
    assert "schema_" not in config.to_json_dict()


def test_starter_config_is_valid_and_means_the_defaults() -> None:
    assert parse_config(STARTER_CONFIG) == Config()


def test_relative_paths_are_read_relative_to_the_config_folder(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    data = {
        "dbPath": "data/runner.sqlite",
        "log": {"file": "logs/runner.log"},
        "notifications": {"slackTokenPath": "slack.token"},
        "gateway": {"tokenPath": "/abs/gw.token"},
    }
    config = load_config(write(folder, data))
    base = folder.resolve()
    assert config.db_path == str(base / "data" / "runner.sqlite")
    assert config.log.file == str(base / "logs" / "runner.log")
    assert config.notifications.slack_token_path == str(base / "slack.token")
    assert config.gateway.token_path == "/abs/gw.token"


def test_default_db_path_is_anchored_to_the_config_folder_too(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, {}))
    assert config.db_path == str(tmp_path.resolve() / "data" / "runner.sqlite")


def test_redaction_hides_token_paths_only() -> None:
    config = parse_config(
        {
            "notifications": {"slackTokenPath": "/s/slack.token", "defaultOnFailure": "C1"},
            "gateway": {"tokenPath": "/s/gw.token"},
        }
    )
    plain = config.to_json_dict()
    assert plain["notifications"]["slackTokenPath"] == "/s/slack.token"
    assert plain["gateway"]["tokenPath"] == "/s/gw.token"
    redacted = config.to_json_dict(redact=True)
    assert redacted["notifications"]["slackTokenPath"] == "<redacted>"
    assert redacted["gateway"]["tokenPath"] == "<redacted>"
    assert redacted["notifications"]["defaultOnFailure"] == "C1"
    assert "/s/" not in json.dumps(redacted)


def test_redaction_leaves_unset_token_paths_null() -> None:
    redacted = Config().to_json_dict(redact=True)
    assert redacted["notifications"]["slackTokenPath"] is None
    assert redacted["gateway"]["tokenPath"] is None


# --- wrong types ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"maxConcurrency": "four"}, 'maxConcurrency: must be an integer ≥ 1, got "four"'),
        # strict: a quoted number, a boolean and a float are not integers
        ({"port": "1937"}, 'port: must be an integer from 1 to 65535, got "1937"'),
        ({"port": True}, "port: must be an integer from 1 to 65535, got true"),
        ({"maxConcurrency": 4.5}, "maxConcurrency: must be an integer ≥ 1, got 4.5"),
        ({"host": None}, "host: must be a non-empty string, got null"),
        ({"host": ""}, 'host: must be a non-empty string, got ""'),
        ({"dbPath": 5}, "dbPath: must be a non-empty string, got 5"),
        (
            {"timezone": 1},
            "timezone: must be an IANA time zone name such as 'Europe/London', got 1",
        ),
        ({"log": "debug"}, 'log: must be an object, got "debug"'),
        ({"notifications": []}, "notifications: must be an object, got []"),
        (
            {"log": {"level": "loud"}},
            'log.level: must be one of trace, debug, info, warn, error, fatal, got "loud"',
        ),
        (
            {"notifications": {"slackTokenPath": 3}},
            "notifications.slackTokenPath: must be a file path string, got 3",
        ),
        (
            {"notifications": {"defaultOnFailure": 7}},
            "notifications.defaultOnFailure: must be a Slack channel id string or null, got 7",
        ),
        ({"gateway": {"url": ""}}, 'gateway.url: must be a URL string, got ""'),
    ],
)
def test_a_wrong_type_names_the_key_what_it_must_be_and_what_it_got(
    data: dict[str, Any], problem: str
) -> None:
    # One problem per key, even where the model tries several types (str | None).
    assert problems_of(data) == [problem]


def test_an_unknown_time_zone_is_named() -> None:
    assert problems_of({"timezone": "Mars/Olympus"}) == [
        "timezone: unknown time zone 'Mars/Olympus'"
    ]


# --- negative and out-of-range numbers --------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"maxConcurrency": -1}, "maxConcurrency: must be an integer ≥ 1, got -1"),
        ({"maxConcurrency": 0}, "maxConcurrency: must be an integer ≥ 1, got 0"),
        ({"runRetentionDays": -30}, "runRetentionDays: must be an integer ≥ 1, got -30"),
        (
            {"stateCleanupIntervalMs": -1},
            "stateCleanupIntervalMs: must be an integer ≥ 1000, got -1",
        ),
        ({"shutdownGraceMs": -5}, "shutdownGraceMs: must be an integer ≥ 0, got -5"),
        (
            {"reconcileIntervalMs": -1},
            "reconcileIntervalMs: must be an integer ≥ 0 (0 = never), got -1",
        ),
        ({"port": -1}, "port: must be an integer from 1 to 65535, got -1"),
        ({"port": 65536}, "port: must be an integer from 1 to 65535, got 65536"),
        (
            {"gateway": {"pollIntervalMs": -100}},
            "gateway.pollIntervalMs: must be an integer ≥ 1, got -100",
        ),
    ],
)
def test_a_number_out_of_range_is_refused(data: dict[str, Any], problem: str) -> None:
    assert problems_of(data) == [problem]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (
            {"cluster": {"enabled": True}},
            "cluster.enabled needs dbUrl: cluster mode runs on PostgreSQL",
        ),
        (
            {"cluster": {"nodeId": "a b"}},
            "cluster.nodeId: must be 1-63 letters, digits, '_', '.', ':' or '-', starting with "
            'a letter or digit, got "a b"',
        ),
        (
            {"cluster": {"labels": ["ok", ""]}},
            "cluster.labels: each label must be 1-63 letters, digits, '_', '.', ':' or '-', "
            'starting with a letter or digit, got ""',
        ),
        (
            {"cluster": {"heartbeatMs": 5}},
            "cluster.heartbeatMs: must be an integer from 100 to 60000, got 5",
        ),
        ({"cluster": {"enabled": "yes"}}, 'cluster.enabled: must be true or false, got "yes"'),
        ({"cluster": {"enabld": True}}, "cluster.enabld: unknown key (did you mean 'enabled'?)"),
    ],
)
def test_cluster_settings_are_checked(data: dict[str, Any], problem: str) -> None:
    assert problems_of(data) == [problem]


def test_cluster_mode_defaults_off_and_takes_its_settings() -> None:
    assert parse_config({}).cluster.enabled is False
    config = parse_config(
        {
            "dbUrl": "postgresql://root@127.0.0.1/jr",
            "cluster": {"enabled": True, "nodeId": "box-1", "labels": ["gpu"], "heartbeatMs": 500},
        }
    )
    assert (config.cluster.node_id, config.cluster.labels, config.cluster.heartbeat_ms) == (
        "box-1",
        ["gpu"],
        500,
    )
    assert parse_config({}).cluster.heartbeat_ms == 2000


def test_zero_is_allowed_where_it_means_something() -> None:
    config = parse_config({"shutdownGraceMs": 0, "reconcileIntervalMs": 0})
    assert (config.shutdown_grace_ms, config.reconcile_interval_ms) == (0, 0)


# --- unknown keys ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"portt": 1937}, "portt: unknown key (did you mean 'port'?)"),
        ({"maxConcurency": 2}, "maxConcurency: unknown key (did you mean 'maxConcurrency'?)"),
        ({"dbpath": "x"}, "dbpath: unknown key (did you mean 'dbPath'?)"),
        ({"log": {"levle": "info"}}, "log.levle: unknown key (did you mean 'level'?)"),
        (
            {"gateway": {"tokenpath": "x"}},
            "gateway.tokenpath: unknown key (did you mean 'tokenPath'?)",
        ),
        (
            {"notifications": {"slackToken": "x"}},
            "notifications.slackToken: unknown key (did you mean 'slackTokenPath'?)",
        ),
        ({"flavour": "blue"}, "flavour: unknown key"),
    ],
)
def test_an_unknown_key_is_refused_with_a_suggestion_when_close(
    data: dict[str, Any], problem: str
) -> None:
    assert problems_of(data) == [problem]


# --- all problems at once -------------------------------------------------------------------


def test_every_problem_is_reported_at_once_each_naming_its_key() -> None:
    problems = problems_of(
        {
            "portt": 1,
            "maxConcurrency": "four",
            "runRetentionDays": -1,
            "log": {"level": "loud"},
            "$schema": "ignored.json",
        }
    )
    assert sorted(problems) == sorted(
        [
            "portt: unknown key (did you mean 'port'?)",
            'maxConcurrency: must be an integer ≥ 1, got "four"',
            "runRetentionDays: must be an integer ≥ 1, got -1",
            'log.level: must be one of trace, debug, info, warn, error, fatal, got "loud"',
        ]
    )


def test_several_problems_render_as_one_line_naming_the_file() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"portt": 1, "maxConcurrency": "four"}, "/etc/jr.json")
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith("/etc/jr.json: 2 problems: ")
    assert 'maxConcurrency: must be an integer ≥ 1, got "four"' in text
    assert "portt: unknown key (did you mean 'port'?)" in text


def test_one_problem_renders_as_file_then_problem() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"port": 0}, "/etc/jr.json")
    assert str(caught.value) == "/etc/jr.json: port: must be an integer from 1 to 65535, got 0"


@pytest.mark.parametrize("data", [[1, 2], "text", 3, None])
def test_a_document_that_is_not_an_object_is_refused(data: object) -> None:
    assert problems_of(data) == ["the file must hold a JSON object"]


# --- the file itself ------------------------------------------------------------------------


def test_broken_json_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '{\n  "port": 1937,\n  "host" "x"\n}\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == ["not valid JSON at line 3, column 10: Expecting ':' delimiter"]
    assert str(caught.value) == (
        f"{path}: not valid JSON at line 3, column 10: Expecting ':' delimiter"
    )
    # `from None`: nothing chains a JSONDecodeError traceback onto the message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_an_empty_file_is_broken_json(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: not valid JSON at line 1, column 1: Expecting value"


def test_a_missing_file_is_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: file not found"


def test_a_folder_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert str(caught.value) == f"{tmp_path}: is a folder, not a config file"


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="root reads files whatever their mode",
)
def test_an_unreadable_file_says_why(tmp_path: Path) -> None:
    path = write(tmp_path, {})
    path.chmod(0)
    try:
        with pytest.raises(ConfigError) as caught:
            load_config(path)
    finally:
        path.chmod(0o600)
    assert str(caught.value) == f"{path}: cannot be read (Permission denied)"


def test_an_os_error_on_read_says_why(tmp_path: Path) -> None:
    # Runs as root too: a path through a regular file fails with ENOTDIR, not ENOENT.
    path = write(tmp_path, {}) / "config.json"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: cannot be read (Not a directory)"


def test_a_file_that_is_not_utf8_cannot_be_read(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(b'{"host": "\xff"}')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: cannot be read (")
    assert "utf-8" in text
    assert "\n" not in text


def test_errors_from_a_file_name_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, {"maxConcurrency": "four"})
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f'{path}: maxConcurrency: must be an integer ≥ 1, got "four"'


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"secretEnv": "SLACK_TOKEN"},
            'config: secretEnv: must be a list of environment variable names, got "SLACK_TOKEN"',
        ),
        (
            {"secretEnv": ["A=1"]},
            "config: secretEnv: each entry must be an environment variable name "
            "(not empty, no '='), got \"A=1\"",
        ),
        (
            {"secretEnv": [""]},
            "config: secretEnv: each entry must be an environment variable name "
            "(not empty, no '='), got \"\"",
        ),
        (
            {"secretEnv": ["OK", 7, None]},
            "config: 2 problems: secretEnv.1: must be an environment variable name string, "
            "got 7; secretEnv.2: must be an environment variable name string, got null",
        ),
    ],
)
def test_bad_secret_env_is_one_line_naming_the_entry(data: object, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert str(caught.value) == message


# --- production checks (issue 14) ------------------------------------------------------------


def test_audit_retention_defaults_to_a_year_and_must_be_positive() -> None:
    assert load_config(None).audit_retention_days == 365
    assert parse_config({"auditRetentionDays": 7}).audit_retention_days == 7
    assert problems_of({"auditRetentionDays": 0}) == [
        "auditRetentionDays: must be an integer ≥ 1, got 0"
    ]


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("http://127.0.0.1:18789", True),
        ("https://gw.example/base", True),
        ("HTTPS://gw.example", True),
        ("ftp:/x", False),
        ("ftp://x", False),
        ("127.0.0.1:18789", False),
        ("http://", False),
        ("file:///etc/passwd", False),
    ],
)
def test_urls_must_be_http_or_https(url: str, ok: bool) -> None:
    for data, key in (
        ({"gateway": {"url": url}}, "gateway.url"),
        ({"notifications": {"slackApiUrl": url}}, "notifications.slackApiUrl"),
    ):
        if ok:
            parse_config(data)
        else:
            assert problems_of(data) == [
                f"{key}: must be an http:// or https:// URL, got {json.dumps(url)}"
            ]


def test_a_key_given_twice_is_refused_wherever_it_is(tmp_path: Path) -> None:
    path = write(tmp_path, '{"port": 1, "log": {"level": "info", "level": "debug"}, "port": 2}')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.render() == (
        f"{path}: 2 problems: port: given more than once; log.level: given more than once"
    )


# --- dbUrl: PostgreSQL instead of the SQLite file --------------------------------------------


def test_db_url_selects_postgres_and_keeps_the_journal_beside_the_default_folder(
    tmp_path: Path,
) -> None:
    config = load_config(write(tmp_path, {"dbUrl": "postgresql://jr:pw@db.internal:5432/jr"}))
    assert config.db_url == "postgresql://jr:pw@db.internal:5432/jr"
    assert config.db_location == config.db_url
    assert config.journal_path == str(tmp_path / "data" / "postgres.unrecorded.jsonl")
    sqlite = load_config(write(tmp_path, {}, "sqlite.json"))
    assert (sqlite.db_url, sqlite.db_location) == (None, sqlite.db_path)
    assert sqlite.journal_path == f"{sqlite.db_path}.unrecorded.jsonl"


def test_redaction_hides_the_password_of_db_url() -> None:
    config = parse_config({"dbUrl": "postgres://jr:s3cret@h/jr?sslmode=require"})
    assert config.to_json_dict(redact=True)["dbUrl"] == "postgres://jr:***@h/jr?sslmode=require"
    assert config.to_json_dict()["dbUrl"] == "postgres://jr:s3cret@h/jr?sslmode=require"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (
            {"dbUrl": "mysql://h/db"},
            "dbUrl: must start with postgresql:// (e.g. postgresql://user@host:5432/database), "
            'got "mysql://h/db"',
        ),
        (
            {"dbUrl": "postgresql://u:pw@h:port/db"},
            "dbUrl: is not a valid URL (Port could not be cast to integer value as 'port'), "
            'got "postgresql://u:***@h:port/db"',
        ),
        (
            {"dbUrl": "postgresql://"},
            'dbUrl: names neither a host nor a database, got "postgresql://"',
        ),
        ({"dbUrl": 5}, "dbUrl: must be a postgresql:// URL string, got 5"),
        (
            {"dbUrl": "postgresql://h/db", "dbPath": "x.sqlite"},
            "set either dbPath (SQLite) or dbUrl (PostgreSQL), not both",
        ),
    ],
)
def test_a_bad_db_url_is_named(data: dict[str, Any], problem: str) -> None:
    assert problems_of(data) == [problem]


# --- webhooks -------------------------------------------------------------------------------

EVENTS = "run.failed, run.recovered, run.succeeded, run.late, run.overdue, run.missed"


def webhooks(*hooks: dict[str, Any], **notifications: Any) -> dict[str, Any]:
    return {"notifications": {"webhooks": list(hooks), **notifications}}


def test_webhooks_are_read_with_their_events_and_secret() -> None:
    config = parse_config(
        webhooks(
            {"name": "pager", "url": "https://hooks.example/x", "events": ["run.failed"]},
            {"name": "all", "url": "http://127.0.0.1:9/h", "events": [], "secret": "k"},
            defaultOnFailure="webhook:pager",
        )
    )
    pager, everything = config.notifications.webhooks
    assert (pager.name, pager.events, pager.secret) == ("pager", ["run.failed"], None)
    assert (everything.name, everything.secret) == ("all", "k")
    assert config.notifications.webhook_names == ["pager", "all"]
    assert parse_config({}).notifications.webhooks == []


@pytest.mark.parametrize(
    ("hooks", "extra", "problem"),
    [
        (
            [{"name": "ops", "url": "http://x/", "events": ["run.fail"]}],
            {},
            f'notifications.webhooks.0.events: unknown event "run.fail" (known: {EVENTS})',
        ),
        (
            [{"name": "ops", "url": "http://x/", "events": ["run.late", "run.late"]}],
            {},
            "notifications.webhooks.0.events: names an event more than once",
        ),
        (
            [{"name": "ops", "url": "http://x/"}],
            {},
            "notifications.webhooks.0.events: is required; it must be a list of event names "
            f"from {EVENTS}",
        ),
        (
            [{"name": "o p", "url": "http://x/", "events": []}],
            {},
            "notifications.webhooks.0.name: must be 1 to 64 letters, digits, '-', '_' or '.' "
            '(a job names it as webhook:NAME), got "o p"',
        ),
        (
            [{"name": "ops", "url": "ftp://x/", "events": []}],
            {},
            'notifications.webhooks.0.url: must be an http:// or https:// URL, got "ftp://x/"',
        ),
        (
            [{"name": "ops", "url": "http://x/", "events": [], "secret": ""}],
            {},
            'notifications.webhooks.0.secret: must be a non-empty string or null, got ""',
        ),
        (
            [{"name": "ops", "url": "http://x/", "events": [], "sceret": "k"}],
            {},
            "notifications.webhooks.0.sceret: unknown key (did you mean 'secret'?)",
        ),
        (
            [{"name": "ops", "url": "http://x/", "events": []}] * 2,
            {},
            "notifications.webhooks: the name 'ops' is used more than once",
        ),
        (
            [{"name": "ops", "url": "http://x/", "events": []}],
            {"defaultOnSuccess": "webhook:pager"},
            'notifications.defaultOnSuccess: no webhook named "pager" in notifications.webhooks '
            "(known: ops)",
        ),
    ],
)
def test_bad_webhooks_are_named(
    hooks: list[dict[str, Any]], extra: dict[str, Any], problem: str
) -> None:
    assert problems_of(webhooks(*hooks, **extra)) == [problem]


def test_a_list_is_required() -> None:
    assert problems_of({"notifications": {"webhooks": {"name": "x"}}}) == [
        "notifications.webhooks: must be a list of webhooks, each {name, url, events, secret}, "
        'got {"name": "x"}'
    ]


def test_redaction_hides_webhook_secrets_and_url_paths() -> None:
    config = parse_config(
        webhooks(
            {
                "name": "s",
                "url": "https://user:pw@hooks.example:8443/services/T0/B0/tok",
                "events": [],
                "secret": "k",
            }
        )
    )
    (shown,) = config.to_json_dict(redact=True)["notifications"]["webhooks"]
    assert shown == {
        "name": "s",
        "url": "https://hooks.example:8443/<redacted>",
        "events": [],
        "secret": "<redacted>",
    }
    (kept,) = config.to_json_dict()["notifications"]["webhooks"]
    assert kept["secret"] == "k"
