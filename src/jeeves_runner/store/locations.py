"""Where a store's data lives, told apart without importing any driver: a SQLite file path
or a PostgreSQL URL (`postgresql://user:password@host:port/database?options`)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

POSTGRES_SCHEMES = ("postgresql", "postgres")
DB_URL_ENV = "JR_DB_URL"


def is_postgres_url(location: str) -> bool:
    return location.startswith(tuple(f"{scheme}://" for scheme in POSTGRES_SCHEMES))


def postgres_url_problem(url: str) -> str | None:
    """None when `url` looks like a PostgreSQL URL, else what is wrong with it (in words)."""
    if not is_postgres_url(url):
        return "must start with postgresql:// (e.g. postgresql://user@host:5432/database)"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if not parts.path.strip("/") and not parts.hostname:
        return "names neither a host nor a database"
    return None


def redact_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<a malformed PostgreSQL URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
