"""What a store raises when the database itself is the problem. Every message is one sentence
for an operator; the API answers these with 503, never 500."""

from __future__ import annotations


class StoreError(Exception):
    """The database cannot be used; the message is one sentence for an operator."""


class SchemaTooNewError(StoreError):
    pass


DATABASE_BUSY = "The database is busy; try again"


class DatabaseBusyError(StoreError):
    """Another process holds the database's write lock longer than we wait for it."""

    def __init__(self, message: str = DATABASE_BUSY) -> None:
        super().__init__(message)


class DatabaseUnavailableError(StoreError):
    """The database cannot be written or read now: disk full, I/O error, damaged file."""


def is_driver_error(exc: BaseException) -> bool:
    """An error raised by a database driver itself (sqlite3, or psycopg when a PostgreSQL
    store is in use), for code outside the store that must turn it into one line without
    knowing which backend it has. psycopg is looked up, never imported here."""
    import sqlite3
    import sys

    if isinstance(exc, sqlite3.Error):
        return True
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, psycopg.Error)
