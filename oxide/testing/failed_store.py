"""A ``failed_jobs`` table in a new SQLite file, built the way an application builds its own."""

from __future__ import annotations

from pathlib import Path

from ..config import parse_database_url
from ..db import connect_database
from ..db.migrations import Migrator, load_migrations, publish
from ..failed.store import DatabaseFailedJobProvider

__all__ = ["sqlite_failed_store"]


def sqlite_failed_store(directory: str | Path) -> DatabaseFailedJobProvider:
    """The failed-job store of a new SQLite database in ``directory``, migrated.

    The queue's migrations are published into ``directory/database/migrations``
    and applied, as ``oxide vendor:publish queue && oxide migrate`` do, so the
    table is the one production has. Close it with ``store.database.close()``.
    """
    root = Path(directory).resolve()
    migrations = root / "database" / "migrations"
    publish("queue", migrations)
    path = root / "database" / "failed_jobs.sqlite"
    url = parse_database_url(f"sqlite:///{path}")
    database = connect_database(url, root, name="test failed-job store", create=True)
    Migrator(database).migrate(load_migrations(migrations))
    return DatabaseFailedJobProvider(database)
