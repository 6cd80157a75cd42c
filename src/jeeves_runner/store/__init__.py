"""The database behind one seam. `protocols` is the contract; `sqlite/` and `postgres/` hold
the only SQL, one backend each; `opening` picks one for a location (a file path or a
`postgresql://` URL); `gateway` is how code on the event loop reaches it (in threads, never on
the loop). `postgres/` is imported only when a URL asks for it (psycopg is not cheap to load)."""

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
