"""The database behind one seam. `protocols` is the contract; `sqlite/` holds the only SQL;
`gateway` is how code on the event loop reaches it (in threads, never on the loop)."""

from __future__ import annotations

from jeeves_runner.models import JobExistsError, ScheduleEntry
from jeeves_runner.store.errors import DatabaseBusyError, DatabaseUnavailableError
from jeeves_runner.store.sqlite import SqliteStore
from jeeves_runner.store.sqlite.database import SCHEMA_VERSION, SchemaTooNewError, StoreError

__all__ = [
    "SCHEMA_VERSION",
    "DatabaseBusyError",
    "DatabaseUnavailableError",
    "JobExistsError",
    "ScheduleEntry",
    "SchemaTooNewError",
    "SqliteStore",
    "StoreError",
]
