"""Settings: the JSON config file, its validation, and its defaults.

Every problem in a file is reported at once, each naming its key, and none as a traceback.
"""

from __future__ import annotations

import difflib
import json
import re
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from jeeves_runner.cluster_model import LABEL, LABEL_RULE
from jeeves_runner.models import DEFAULT_DB_PATH
from jeeves_runner.notify_model import WEBHOOK_PREFIX, AlertEvent
from jeeves_runner.scheduling.cron import InvalidSchedule, resolve_zone
from jeeves_runner.store.locations import postgres_url_problem, redact_url

LogLevel = Literal["trace", "debug", "info", "warn", "error", "fatal"]

DEFAULT_SLACK_API_URL = "https://slack.com/api"
DEFAULT_GATEWAY_URL = "http://127.0.0.1:18789"


class ConfigError(Exception):
    """A config file that cannot be used; `problems` holds one line per problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        # One line whatever the count: the CLI promises every error is a single line.
        if len(self.problems) == 1:
            return f"{self.source}: {self.problems[0]}"
        return f"{self.source}: {len(self.problems)} problems: " + "; ".join(self.problems)


class _Section(BaseModel):
    # strict: "4" is not 4 and 4.0 is not an integer; a config file should say what it means.
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True, frozen=True)


def _http_url(value: str) -> str:
    """The check shared by every URL setting: http or https with a host, as httpx needs."""
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest.split("/")[0]:
        raise ValueError(f"must be an http:// or https:// URL, got {json.dumps(value)}")
    return value


_WEBHOOK_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
EVENT_NAMES = ", ".join(e.value for e in AlertEvent)


class WebhookConfig(_Section):
    """One receiver of JSON POSTs (see README, "Webhooks")."""

    name: str
    url: str
    # The events this webhook gets from every job ([]: only what jobs send it by name,
    # `on_failure: "webhook:NAME"`).
    events: list[str]
    # Signs each body: X-Jeeves-Signature: sha256=<hex HMAC-SHA256 of the body>.
    secret: str | None = Field(default=None, min_length=1)

    _url = field_validator("url")(_http_url)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _WEBHOOK_NAME.fullmatch(value):
            raise ValueError(
                "must be 1 to 64 letters, digits, '-', '_' or '.' (a job names it as "
                f"webhook:NAME), got {json.dumps(value, ensure_ascii=False)}"
            )
        return value

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        known = {e.value for e in AlertEvent}
        for event in value:
            if event not in known:
                raise ValueError(
                    f"unknown event {json.dumps(event, ensure_ascii=False)} (known: {EVENT_NAMES})"
                )
        if len(set(value)) != len(value):
            raise ValueError("names an event more than once")
        return value


class NotificationsConfig(_Section):
    slack_token_path: str | None = Field(default=None, alias="slackTokenPath")
    default_on_failure: str | None = Field(default=None, alias="defaultOnFailure")
    default_on_success: str | None = Field(default=None, alias="defaultOnSuccess")
    slack_api_url: str = Field(default=DEFAULT_SLACK_API_URL, alias="slackApiUrl", min_length=1)
    webhooks: list[WebhookConfig] = Field(default_factory=list)

    _url = field_validator("slack_api_url")(_http_url)

    @model_validator(mode="after")
    def _webhook_names(self) -> NotificationsConfig:
        seen: set[str] = set()
        for hook in self.webhooks:
            if hook.name in seen:
                raise ValueError(f"webhooks: the name {hook.name!r} is used more than once")
            seen.add(hook.name)
        for key, value in (
            ("defaultOnFailure", self.default_on_failure),
            ("defaultOnSuccess", self.default_on_success),
        ):
            problem = destination_problem(value, self.webhook_names)
            if problem is not None:
                raise ValueError(f"{key}: {problem}")
        return self

    @property
    def webhook_names(self) -> list[str]:
        return [hook.name for hook in self.webhooks]


def job_destination_problem(
    on_failure: str | None, on_success: str | None, webhook_names: list[str]
) -> str | None:
    """The first of a job's on_failure/on_success that names an unknown webhook, as
    "on_failure: no webhook named ...", or None."""
    for key, value in (("on_failure", on_failure), ("on_success", on_success)):
        problem = destination_problem(value, webhook_names)
        if problem is not None:
            return f"{key}: {problem}"
    return None


def destination_problem(value: str | None, webhook_names: list[str]) -> str | None:
    """Why a job's on_failure/on_success (or a default) cannot be used, or None: a Slack
    channel is anything; `webhook:NAME` must name a configured webhook."""
    if value is None or not value.startswith(WEBHOOK_PREFIX):
        return None
    name = value[len(WEBHOOK_PREFIX) :]
    if name in webhook_names:
        return None
    known = ", ".join(webhook_names) if webhook_names else "none are configured"
    return (
        f"no webhook named {json.dumps(name, ensure_ascii=False)} in "
        f"notifications.webhooks (known: {known})"
    )


class LogConfig(_Section):
    level: LogLevel = "info"
    file: str | None = None


class GatewayConfig(_Section):
    url: str = Field(default=DEFAULT_GATEWAY_URL, min_length=1)
    token_path: str | None = Field(default=None, alias="tokenPath")
    poll_interval_ms: int = Field(default=5000, alias="pollIntervalMs", ge=1)

    _url = field_validator("url")(_http_url)


class ClusterConfig(_Section):
    """Cluster mode (README, "Cluster mode"): needs dbUrl."""

    enabled: bool = False
    # Default: "<host name>-<port>", which is unique on one machine.
    node_id: str | None = Field(default=None, alias="nodeId")
    labels: list[str] = Field(default_factory=list)
    heartbeat_ms: int = Field(default=2000, alias="heartbeatMs", ge=100, le=60_000)

    @field_validator("node_id")
    @classmethod
    def _node_label(cls, value: str | None) -> str | None:
        if value is not None and not LABEL.match(value):
            raise ValueError(f"must be {LABEL_RULE}, got {json.dumps(value)}")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: list[str]) -> list[str]:
        for label in value:
            if not LABEL.match(label):
                raise ValueError(f"each label must be {LABEL_RULE}, got {json.dumps(label)}")
        return value


class Config(_Section):
    port: int = Field(default=1937, ge=1, le=65535)
    host: str = Field(default="127.0.0.1", min_length=1)
    db_path: str = Field(default=DEFAULT_DB_PATH, alias="dbPath", min_length=1)
    # PostgreSQL instead of the SQLite file at dbPath (see README, "PostgreSQL").
    db_url: str | None = Field(default=None, alias="dbUrl")
    max_concurrency: int = Field(default=4, alias="maxConcurrency", ge=1)
    run_retention_days: int = Field(default=30, alias="runRetentionDays", ge=1)
    audit_retention_days: int = Field(default=365, alias="auditRetentionDays", ge=1)
    state_cleanup_interval_ms: int = Field(
        default=3_600_000, alias="stateCleanupIntervalMs", ge=1000
    )
    shutdown_grace_ms: int = Field(default=30_000, alias="shutdownGraceMs", ge=0)
    timezone: str | None = None
    reconcile_interval_ms: int = Field(default=60_000, alias="reconcileIntervalMs", ge=0)
    jobs_dir: str | None = Field(default=None, alias="jobsDir", min_length=1)
    jobs_prune: bool = Field(default=False, alias="jobsPrune")
    notifications: NotificationsConfig = NotificationsConfig()
    log: LogConfig = LogConfig()
    gateway: GatewayConfig = GatewayConfig()
    cluster: ClusterConfig = ClusterConfig()
    # Names of environment variables jobs must not inherit (the gateway token variable is
    # withheld anyway): see execution/child_env.py.
    secret_env: list[str] = Field(default_factory=list, alias="secretEnv")
    # A run's full log keeps at most this many bytes: past it, the first half and the last
    # half, with a line saying how much was dropped between them.
    run_log_max_bytes: int = Field(default=10 * 1024 * 1024, alias="runLogMaxBytes", ge=1024)
    schema_: Any = Field(default=None, alias="$schema", exclude=True)

    @field_validator("secret_env")
    @classmethod
    def _variable_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name or "=" in name or "\0" in name:
                raise ValueError(
                    "each entry must be an environment variable name (not empty, no '='), "
                    f"got {json.dumps(name, ensure_ascii=False)}"
                )
        return value

    @field_validator("db_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        problem = postgres_url_problem(value)
        if problem is not None:
            raise ValueError(f"{problem}, got {json.dumps(redact_url(value))}")
        return value

    @model_validator(mode="after")
    def _one_database(self) -> Config:
        if self.db_url is not None and "db_path" in self.model_fields_set:
            raise ValueError("set either dbPath (SQLite) or dbUrl (PostgreSQL), not both")
        if self.cluster.enabled and self.db_url is None:
            raise ValueError("cluster.enabled needs dbUrl: cluster mode runs on PostgreSQL")
        return self

    @property
    def db_location(self) -> str:
        """Where the data lives: the dbUrl when set, else the SQLite file at dbPath."""
        return self.db_url if self.db_url is not None else self.db_path

    @property
    def journal_path(self) -> str:
        """Results the database refused at a stop, kept for the next start: next to the
        SQLite file, or, with PostgreSQL, in the folder dbPath would use."""
        if self.db_url is None:
            # Beside the real file, however the path is spelled (a symlink, `a/../a`).
            return f"{Path(self.db_path).resolve()}.unrecorded.jsonl"
        return str(Path(self.db_path).parent / "postgres.unrecorded.jsonl")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            resolve_zone(value)  # the very lookup the scheduler will do
        except InvalidSchedule:
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    def to_json_dict(self, *, redact: bool = False) -> dict[str, Any]:
        data = self.model_dump(by_alias=True, exclude={"schema_"})
        if redact:
            for section, key in (("notifications", "slackTokenPath"), ("gateway", "tokenPath")):
                if data[section][key] is not None:
                    data[section][key] = "<redacted>"
            for hook in data["notifications"]["webhooks"]:
                # A webhook's URL often carries its credential (a token in the path).
                scheme, _, rest = hook["url"].partition("://")
                hook["url"] = f"{scheme}://{rest.split('/')[0].rpartition('@')[2]}/<redacted>"
                if hook["secret"] is not None:
                    hook["secret"] = "<redacted>"
            if data["dbUrl"] is not None:
                data["dbUrl"] = redact_url(data["dbUrl"])
        return data


# What each constrained key must be, in words an operator reads in an error message.
_EXPECTATIONS: dict[str, str] = {
    "port": "an integer from 1 to 65535",
    "host": "a non-empty string",
    "dbPath": "a non-empty string",
    "dbUrl": "a postgresql:// URL string",
    "maxConcurrency": "an integer ≥ 1",
    "runRetentionDays": "an integer ≥ 1",
    "auditRetentionDays": "an integer ≥ 1",
    "stateCleanupIntervalMs": "an integer ≥ 1000",
    "shutdownGraceMs": "an integer ≥ 0",
    "timezone": "an IANA time zone name such as 'Europe/London'",
    "reconcileIntervalMs": "an integer ≥ 0 (0 = never)",
    "jobsDir": "a folder path string",
    "jobsPrune": "true or false",
    "notifications": "an object",
    "notifications.slackTokenPath": "a file path string",
    "notifications.defaultOnFailure": "a Slack channel id string or null",
    "notifications.defaultOnSuccess": "a Slack channel id string or null",
    "notifications.slackApiUrl": "a URL string",
    "notifications.webhooks": "a list of webhooks, each {name, url, events, secret}",
    "notifications.webhooks.[]": "an object {name, url, events, secret}",
    "notifications.webhooks.[].name": "a name string (letters, digits, '-', '_', '.')",
    "notifications.webhooks.[].url": "a URL string",
    "notifications.webhooks.[].events": f"a list of event names from {EVENT_NAMES}",
    "notifications.webhooks.[].events.[]": f"an event name string, one of {EVENT_NAMES}",
    "notifications.webhooks.[].secret": "a non-empty string or null",
    "log": "an object",
    "log.level": "one of trace, debug, info, warn, error, fatal",
    "log.file": "a file path string",
    "gateway": "an object",
    "gateway.url": "a URL string",
    "gateway.tokenPath": "a file path string",
    "gateway.pollIntervalMs": "an integer ≥ 1",
    "cluster": "an object",
    "cluster.enabled": "true or false",
    "cluster.nodeId": "a node id string",
    "cluster.labels": "a list of label strings",
    "cluster.labels.[]": "a label string",
    "cluster.heartbeatMs": "an integer from 100 to 60000",
    "secretEnv": "a list of environment variable names",
    "secretEnv.[]": "an environment variable name string",
    "$schema": "a string",
}


def _known_keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _section_model(path: tuple[str, ...]) -> type[BaseModel]:
    model: type[BaseModel] = Config
    for part in path:
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if typing.get_origin(annotation) is list:
                (annotation,) = typing.get_args(annotation)  # a list of sections: its item
            if (
                (field.alias or name) == part
                and isinstance(annotation, type)
                and issubclass(annotation, BaseModel)
            ):
                model = annotation
    return model


def _describe(error: Any) -> str:
    loc = tuple(str(p) for p in error["loc"])
    key = ".".join(loc)
    if error["type"] == "extra_forbidden":
        known = _known_keys(_section_model(loc[:-1]))
        close = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"{key}: unknown key{hint}"
    got = json.dumps(error.get("input"), ensure_ascii=False)
    if error["type"] == "value_error":
        reason = str(error.get("ctx", {}).get("error", error["msg"]))
        inner, sep, rest = reason.partition(": ")
        if key and sep and inner in _known_keys(_section_model(loc)):
            return f"{key}.{inner}: {rest}"  # a section's check naming one of its keys
        return f"{key}: {reason}" if key else reason
    # A list element's key ("secretEnv.2") is described once for every index.
    element = ".".join("[]" if part.isdigit() else part for part in loc)
    expected = _EXPECTATIONS.get(key) or _EXPECTATIONS.get(element) or error["msg"].lower()
    if error["type"] == "missing":
        return f"{key}: is required; it must be {expected}"
    return f"{key}: must be {expected}, got {got}"


def parse_config(data: object, source: str = "config") -> Config:
    if not isinstance(data, dict):
        raise ConfigError(source, ["the file must hold a JSON object"])
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems: list[str] = []
        for err in exc.errors():
            text = _describe(err)
            if text not in problems:
                problems.append(text)
        raise ConfigError(source, problems) from None


def load_config(path: str | Path | None) -> Config:
    """Read and validate a config file; None gives the defaults.

    Relative paths inside a file (dbPath, log.file, token paths) are read relative to the
    file's folder, so a service does not depend on its working directory.
    """
    if path is None:
        return Config()
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")  # a BOM (Windows editors) is fine
    except FileNotFoundError:
        raise ConfigError(str(file), ["file not found"]) from None
    except IsADirectoryError:
        raise ConfigError(str(file), ["is a folder, not a config file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(str(file), [f"cannot be read ({reason})"]) from None
    try:
        data = json.loads(text, object_pairs_hook=_object_with_duplicates)
    except json.JSONDecodeError as exc:
        problem = f"not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        raise ConfigError(str(file), [problem]) from None
    duplicates = _duplicate_keys(data)
    if duplicates:
        # JSON lets a later key silently win; in a config file that hides a mistake.
        raise ConfigError(str(file), [f"{key}: given more than once" for key in duplicates])
    config = parse_config(data, str(file))
    return _anchor_paths(config, file.resolve().parent)


class _JsonObject(dict[str, Any]):
    """A parsed JSON object that remembers which of its keys appeared more than once."""

    duplicates: list[str]


def _object_with_duplicates(pairs: list[tuple[str, Any]]) -> _JsonObject:
    result = _JsonObject()
    result.duplicates = []
    for key, value in pairs:
        if key in result and key not in result.duplicates:
            result.duplicates.append(key)
        result[key] = value
    return result


def _duplicate_keys(value: object, prefix: str = "") -> list[str]:
    """Dotted names of the keys given twice, outer objects first."""
    if isinstance(value, list):
        return [key for item in value for key in _duplicate_keys(item, prefix)]
    if not isinstance(value, _JsonObject):
        return []
    found = [prefix + key for key in value.duplicates]
    for key, child in value.items():
        found += _duplicate_keys(child, f"{prefix}{key}.")
    return found


def _anchor_paths(config: Config, base: Path) -> Config:
    def anchor(value: str | None) -> str | None:
        if value is None:
            return None
        p = Path(value).expanduser()
        return str(p if p.is_absolute() else base / p)

    return config.model_copy(
        update={
            "db_path": anchor(config.db_path),
            "jobs_dir": anchor(config.jobs_dir),
            "log": config.log.model_copy(update={"file": anchor(config.log.file)}),
            "notifications": config.notifications.model_copy(
                update={"slack_token_path": anchor(config.notifications.slack_token_path)}
            ),
            "gateway": config.gateway.model_copy(
                update={"token_path": anchor(config.gateway.token_path)}
            ),
        }
    )


STARTER_CONFIG: dict[str, Any] = {
    "port": 1937,
    "host": "127.0.0.1",
    "dbPath": DEFAULT_DB_PATH,
    "maxConcurrency": 4,
    "runRetentionDays": 30,
    "stateCleanupIntervalMs": 3_600_000,
    "shutdownGraceMs": 30_000,
    "reconcileIntervalMs": 60_000,
    "notifications": {"defaultOnFailure": None, "defaultOnSuccess": None},
    "log": {"level": "info"},
    "gateway": {"url": DEFAULT_GATEWAY_URL},
}
