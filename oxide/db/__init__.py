"""A small DB-API 2.0 layer shared by everything that keeps state in SQL.

:class:`Database` wraps one connection factory and one :class:`~oxide.db.dialects.Dialect`.
Statements are written once with ``?`` placeholders; every value is a
parameter. Each call runs in its own transaction and ends it (a read that left
a snapshot open would show stale rows later on MySQL). A failed call closes the
connection, so the next call reconnects: a database that comes back is used
again without a restart.

Build one from a config URL with :func:`database_for` / :func:`connect_database`,
or hand in any DB-API connection factory and a dialect name::

    Database(lambda: my_pool.getconn(), "postgresql")

Errors are :class:`DatabaseError` (or :class:`TableMissing`); their messages
never hold the password.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import OxideError
from .dialects import Dialect, bind, dialect_named

if TYPE_CHECKING:
    from ..config import Config, DatabaseUrl

__all__ = ["Database", "DatabaseError", "Dialect", "Session", "TableMissing", "connect_database", "database_for"]

Row = tuple[Any, ...]


class DatabaseError(OxideError):
    """A statement could not run: the server is down, locked, full, or refused it."""


class TableMissing(DatabaseError):
    """A statement named a table that does not exist (usually: migrations not run)."""


class Session:
    """Statements inside one transaction of :meth:`Database.transaction`."""

    def __init__(self, database: Database, connection: Any) -> None:
        self._database = database
        self._connection = connection

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the driver's row count."""
        cursor = self._cursor(sql, params)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one statement and return every row."""
        cursor = self._cursor(sql, params)
        try:
            return [tuple(row) for row in cursor.fetchall()]
        finally:
            cursor.close()

    def _cursor(self, sql: str, params: Sequence[Any]) -> Any:
        cursor = self._connection.cursor()
        if params:
            cursor.execute(*bind(sql, params, self._database.paramstyle))
        else:
            # No parameters: the text goes as it is, so a '%' in DDL is not read as a placeholder.
            cursor.execute(sql)
        return cursor


class Database:
    """One database: a connection factory, its dialect, and a name safe to print."""

    def __init__(
        self,
        connect: Callable[[], Any],
        dialect: str | Dialect,
        *,
        name: str = "database",
        paramstyle: str | None = None,
        secrets: Sequence[str] = (),
    ) -> None:
        self.dialect = dialect if isinstance(dialect, Dialect) else dialect_named(dialect)
        self.name = name
        # A hand-made factory may use another driver than ours: its paramstyle can be given.
        self.paramstyle = paramstyle or self.dialect.paramstyle
        self._connect = connect
        self._secrets = [s for s in secrets if s]
        self._connection: Any = None
        # One connection, one statement at a time: DB-API connections are not safe to share between threads.
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"Database({self.name!r}, dialect={self.dialect.name!r})"

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement in its own transaction and commit; returns the row count."""
        with self.transaction() as session:
            return session.execute(sql, params)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one read in its own transaction; returns every row."""
        with self.transaction() as session:
            return session.query(sql, params)

    @contextmanager
    def transaction(self, *, for_update: bool = False) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back (and the connection dropped) on error.

        ``for_update``: the block reads rows in order to change them (a queue take), and the
        dialect starts the transaction so that two such blocks never act on the same row.
        """
        with self._lock:
            try:
                connection = self._open()
                if for_update:
                    self.dialect.begin_for_update(connection)
                else:
                    self.dialect.begin(connection)
                yield Session(self, connection)
                connection.commit()
            except DatabaseError:
                self._discard()
                raise
            # Any driver's error type may arrive here (a hand-made factory may use any driver), and each
            # means the same: nothing was committed. It is reported as DatabaseError, password removed.
            except Exception as exc:
                self._discard()
                raise self._error(exc) from None

    def close(self) -> None:
        """Close the connection; the next statement opens a new one."""
        with self._lock:
            self._discard()

    def table_exists(self, table: str) -> bool:
        """Whether ``table`` exists, found by reading nothing from it."""
        try:
            self.query(f"SELECT 1 FROM {self.dialect.quote(table)} WHERE 1 = 0")
        except TableMissing:
            return False
        return True

    def redact(self, text: str) -> str:
        """``text`` with every secret of this database (its password) replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _open(self) -> Any:
        if self._connection is None:
            self._connection = self._connect()
        return self._connection

    def _discard(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        # The connection may already be dead: rolling back and closing are best effort.
        with suppress(Exception):
            connection.rollback()
        with suppress(Exception):
            connection.close()

    def _error(self, exc: Exception) -> DatabaseError:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        message = self.redact(f"{self.name}: {detail}")
        if self.dialect.is_missing_table(exc):
            return TableMissing(message)
        return DatabaseError(message)


def connect_database(
    url: DatabaseUrl, root: Path, *, name: str | None = None, timeout_secs: float = 5.0, create: bool = False
) -> Database:
    """A :class:`Database` for a parsed config URL; relative SQLite paths are under ``root``.

    The driver is imported now, so a missing one is a ConfigError at startup, naming the extra.
    ``create`` lets SQLite create a missing database file (``oxide migrate`` does; a worker does not).
    """
    dialect = dialect_named(url.dialect)
    label = f"{name} ({url.redacted()})" if name else url.redacted()
    factory = dialect.connector(url, root, timeout_secs=timeout_secs, create=create)
    # The driver is given the decoded password; an error may quote either form.
    secrets = [url.password, urlsplit(url.url).password or ""] if url.password else []
    return Database(factory, dialect, name=label, secrets=secrets)


def database_for(config: Config, name: str | None = None, *, create: bool = False) -> Database:
    """The database connection ``name`` of ``database.toml`` (the default when ``None``)."""
    key = config.database.default if name is None else name
    return connect_database(config.database.get(key), config.root, name=f"database {key!r}", create=create)
