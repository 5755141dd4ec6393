"""Everything that differs between SQLite, PostgreSQL and MySQL/MariaDB, in one place.

The rest of the package writes SQL once, with ``?`` placeholders and identifiers
passed through :meth:`Dialect.quote`; a dialect rewrites the placeholders for
its driver's paramstyle, quotes names, connects, writes the statements that
differ (an insert that ignores a duplicate key, the migrations table), maps
timestamps and text to what the server stores, and recognises "no such table".
For the ``database`` queue driver it also says how to read the server's clock
and how a take locks the row it reserves (``BEGIN IMMEDIATE`` on SQLite,
``FOR UPDATE SKIP LOCKED`` on the servers). A new database is one subclass here
and one line in :data:`DIALECTS`.
"""

from __future__ import annotations

import importlib
import random
import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from ..config import DatabaseUrl
from ..errors import ConfigError

__all__ = ["DIALECTS", "Dialect", "MySQLDialect", "PostgreSQLDialect", "SQLiteDialect", "bind", "dialect_named"]

PARAMSTYLES = ("qmark", "format", "pyformat", "numeric", "named")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_SURROGATE = re.compile("[\ud800-\udfff]")


def bind(sql: str, params: Sequence[Any], paramstyle: str) -> tuple[str, Sequence[Any] | dict[str, Any]]:
    """Rewrite the ``?`` placeholders of ``sql`` for a DB-API paramstyle (PEP 249).

    Our statements hold no ``?`` or ``%`` inside literals, so a plain scan is exact.
    """
    if paramstyle == "qmark":
        return sql, params
    pieces = sql.split("?")
    if len(pieces) - 1 != len(params):
        raise ValueError(f"statement has {len(pieces) - 1} placeholders but {len(params)} parameters")
    if paramstyle in ("format", "pyformat"):
        # A literal % must be doubled in these styles, or the driver reads it as a placeholder.
        return "%s".join(piece.replace("%", "%%") for piece in pieces), params
    if paramstyle == "numeric":
        return pieces[0] + "".join(f":{i}{piece}" for i, piece in enumerate(pieces[1:], start=1)), params
    if paramstyle == "named":
        text = pieces[0] + "".join(f":p{i}{piece}" for i, piece in enumerate(pieces[1:], start=1))
        return text, {f"p{i}": value for i, value in enumerate(params, start=1)}
    raise ValueError(f"unknown DB-API paramstyle {paramstyle!r}; expected one of {', '.join(PARAMSTYLES)}")


class Dialect:
    """The SQLite defaults; subclasses override what their server does differently."""

    name: ClassVar[str] = ""
    paramstyle: ClassVar[str] = "qmark"  # of the driver this dialect connects with
    driver_module: ClassVar[str] = ""
    extra: ClassVar[str | None] = None  # the oxide-queue extra that installs the driver
    quote_char: ClassVar[str] = '"'
    timestamp_type: ClassVar[str] = "TIMESTAMP(6)"
    table_options: ClassVar[str] = ""
    # The queue driver: the server's clock in whole milliseconds since the Unix epoch, UTC.
    epoch_ms_sql: ClassVar[str] = "SELECT CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
    # Appended to a take's SELECT: lock the row returned, and pass over rows other takers hold.
    # Empty: the server has no row locks (SQLite), and a take holds the whole database instead.
    skip_locked: ClassVar[str] = ""
    server_version_sql: ClassVar[str | None] = None

    def quote(self, name: str) -> str:
        """A table or column name, quoted; only plain identifiers are accepted, so quoting is exact."""
        if not _IDENTIFIER.fullmatch(name):
            raise ValueError(f"{name!r} is not a plain SQL identifier ([A-Za-z_][A-Za-z0-9_]*, at most 63 characters)")
        return f"{self.quote_char}{name}{self.quote_char}"

    def driver(self) -> Any:
        """The DB-API module, imported now; a missing one is a ConfigError naming the extra."""
        try:
            return importlib.import_module(self.driver_module)
        except ImportError:
            raise ConfigError(
                f"a {self.name} database needs the {self.driver_module} package, which is not installed: "
                f"pip install 'oxide-queue[{self.extra}]'"
            ) from None

    def connector(self, url: DatabaseUrl, root: Path, *, timeout_secs: float, create: bool) -> Callable[[], Any]:
        """A zero-argument function opening a new DB-API connection to ``url``."""
        raise NotImplementedError

    def begin(self, connection: Any) -> None:
        """Start a transaction if the driver does not start one by itself before the next statement."""

    def begin_for_update(self, connection: Any) -> None:
        """Start a transaction that reads rows in order to change them (a queue take)."""
        self.begin(connection)

    def skip_locked_missing(self, version: str) -> str | None:
        """Why a server of ``version`` cannot take queue rows safely, or None if it can."""
        return None

    def prepare_queue_connection(self, connection: Any) -> None:
        """Set up a new connection of the queue driver, before its first transaction."""

    def insert_ignoring_duplicate(self, table: str, columns: Sequence[str], unique: str) -> str:
        """An INSERT of one row that silently keeps the existing row when ``unique`` already holds the value."""
        cols = ", ".join(self.quote(c) for c in columns)
        marks = ", ".join("?" for _ in columns)
        return (
            f"INSERT INTO {self.quote(table)} ({cols}) VALUES ({marks}) ON CONFLICT ({self.quote(unique)}) DO NOTHING"
        )

    def upsert(self, table: str, keys: Sequence[str], values: Sequence[str], *, add: bool = False) -> str:
        """An INSERT of one row (``keys`` then ``values``) that updates the row already holding those keys.

        ``add``: the existing row's values grow by the new ones (counters), instead of being replaced.
        """
        q = self.quote
        cols = ", ".join(q(c) for c in (*keys, *values))
        marks = ", ".join("?" for _ in (*keys, *values))
        sets = ", ".join(
            f"{q(c)} = {q(table)}.{q(c)} + excluded.{q(c)}" if add else f"{q(c)} = excluded.{q(c)}" for c in values
        )
        keyed = ", ".join(q(c) for c in keys)
        return f"INSERT INTO {q(table)} ({cols}) VALUES ({marks}) ON CONFLICT ({keyed}) DO UPDATE SET {sets}"

    def create_migrations_table(self, table: str) -> str:
        """DDL of the table that records which migrations ran."""
        return (
            f"CREATE TABLE IF NOT EXISTS {self.quote(table)} ("
            f"{self.quote('migration')} VARCHAR(255) NOT NULL PRIMARY KEY, "
            f"{self.quote('batch')} INTEGER NOT NULL, "
            f"{self.quote('applied_at')} {self.timestamp_type} NOT NULL){self.table_options}"
        )

    def is_missing_table(self, exc: BaseException) -> bool:
        """Whether a driver error says the statement named a table that does not exist."""
        return False

    def timestamp_param(self, moment: datetime) -> Any:
        """A moment as this server stores it: naive UTC (the column type has no zone)."""
        return _utc(moment).replace(tzinfo=None)

    def timestamp_value(self, value: Any) -> datetime:
        """A stored timestamp read back, as an aware UTC datetime."""
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if not isinstance(value, datetime):
            raise TypeError(f"expected a timestamp from the database, got {value!r}")
        return _utc(value)

    def text_param(self, text: str) -> str:
        """Text as the server can store it. A lone surrogate cannot be UTF-8 in any server: it becomes its escape."""
        if _SURROGATE.search(text):
            return text.encode("utf-8", "backslashreplace").decode("utf-8")
        return text


def _utc(moment: datetime) -> datetime:
    # A naive datetime is taken to be UTC already: the worker stamps failures in UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class SQLiteDialect(Dialect):
    name = "sqlite"
    driver_module = "sqlite3"
    timestamp_type = "TEXT"

    def connector(self, url: DatabaseUrl, root: Path, *, timeout_secs: float, create: bool) -> Callable[[], Any]:
        sqlite3 = self.driver()
        path = url.path or ""
        file: Path | None = None
        target = ":memory:"
        if path != ":memory:":
            file = (Path(path) if Path(path).is_absolute() else root / path).resolve()
            # mode=rw: a worker must not create an empty database where the real one is missing;
            # only `oxide migrate` (create=True) may create the file.
            target = f"{file.as_uri()}?mode={'rwc' if create else 'rw'}"

        def connect() -> Any:
            if file is not None and not create and not file.exists():
                # sqlite's own message ("unable to open database file") does not say what to do.
                raise FileNotFoundError(
                    f"database file {file} does not exist; create it with: oxide vendor:publish queue && oxide migrate"
                )
            # isolation_level=None: we issue BEGIN ourselves, so DDL in a migration is inside the transaction too.
            # check_same_thread=False: a Database uses its one connection under a lock, from whichever
            # thread asks (the worker's take loop, its heartbeat thread); sqlite3 only refuses by default.
            return sqlite3.connect(
                target, uri=file is not None, timeout=timeout_secs, isolation_level=None, check_same_thread=False
            )

        return connect

    def begin(self, connection: Any) -> None:
        if getattr(connection, "isolation_level", "") is None and not connection.in_transaction:
            connection.execute("BEGIN")

    def begin_for_update(self, connection: Any) -> None:
        # SQLite has no row locks. IMMEDIATE takes the write lock before the first read, so two
        # processes never read the same head of a queue; a deferred BEGIN would let both read and
        # then fail with SQLITE_BUSY (not retried) when one of them upgrades to write. This holds
        # for a hand-made connection in sqlite3's implicit mode too: an explicit BEGIN is honoured.
        if connection.in_transaction:
            return
        # SQLite's own wait for a busy lock sleeps up to 100 ms between tries: under steady load a
        # sleeper missed the lock for seconds (4 s measured) while busier processes took it again
        # and again. Asking every millisecond or so, up to the connection's own timeout, keeps the
        # longest wait near 0.3 s and the work evenly shared (docs/database-driver.md).
        patience_ms = int(connection.execute("PRAGMA busy_timeout").fetchone()[0])
        connection.execute("PRAGMA busy_timeout = 0")
        try:
            deadline = time.monotonic() + patience_ms / 1000
            while True:
                try:
                    connection.execute("BEGIN IMMEDIATE")
                    return
                except self.driver().OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() >= deadline:
                        raise
                time.sleep(random.uniform(0.0002, 0.002))  # jittered, so waiters do not ask in step
        finally:
            connection.execute(f"PRAGMA busy_timeout = {patience_ms:d}")

    def prepare_queue_connection(self, connection: Any) -> None:
        # Write-ahead logging: workers read while one writes, and a commit costs one fsync of the
        # log instead of several of a rollback journal (docs/database-driver.md has the figures).
        # The mode is kept in the file, so this changes it once; it needs a local file system.
        connection.execute("PRAGMA journal_mode=WAL").fetchall()

    def is_missing_table(self, exc: BaseException) -> bool:
        return "no such table" in str(exc)

    def timestamp_param(self, moment: datetime) -> Any:
        # Fixed-width text sorts as time does, so `failed_at < ?` works on the text column.
        return _utc(moment).strftime("%Y-%m-%d %H:%M:%S.%f")


class PostgreSQLDialect(Dialect):
    name = "postgresql"
    paramstyle = "format"
    driver_module = "psycopg"
    extra = "postgres"

    def connector(self, url: DatabaseUrl, root: Path, *, timeout_secs: float, create: bool) -> Callable[[], Any]:
        psycopg = self.driver()
        # The URL goes to libpq whole, so its query options (sslmode, options=-csearch_path=…) apply.
        conninfo = "postgresql://" + url.url.partition("://")[2]

        def connect() -> Any:
            return psycopg.connect(conninfo, connect_timeout=max(1, round(timeout_secs)))

        return connect

    epoch_ms_sql = "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    server_version_sql = "SHOW server_version_num"

    def skip_locked_missing(self, version: str) -> str | None:
        if int(version) >= 90500:
            return None
        return f"PostgreSQL {version} has no SKIP LOCKED (9.5 and later have it)"

    def is_missing_table(self, exc: BaseException) -> bool:
        return getattr(exc, "sqlstate", None) == "42P01"  # undefined_table

    def text_param(self, text: str) -> str:
        # PostgreSQL text cannot hold U+0000; it is written as the visible escape \x00.
        return super().text_param(text).replace("\x00", "\\x00")


class MySQLDialect(Dialect):
    name = "mysql"
    paramstyle = "format"
    driver_module = "pymysql"
    extra = "mysql"
    quote_char = "`"
    timestamp_type = "DATETIME(6)"
    # utf8mb4 holds every code point; the binary collation keeps uuids case-sensitive as elsewhere.
    table_options = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"

    def connector(self, url: DatabaseUrl, root: Path, *, timeout_secs: float, create: bool) -> Callable[[], Any]:
        pymysql = self.driver()
        timeout = max(1, round(timeout_secs))

        def connect() -> Any:
            return pymysql.connect(
                host=url.host or "127.0.0.1",
                port=url.port or 3306,
                user=url.user or "root",
                password=url.password or "",
                database=url.database,
                charset="utf8mb4",
                connect_timeout=timeout,
                # Bounded reads and writes: a hung server must not hang a worker forever.
                read_timeout=30,
                write_timeout=30,
                autocommit=False,
            )

        return connect

    # UTC, whatever the session's time zone; UNIX_TIMESTAMP(NOW(3)) would be off by an hour in a DST fold.
    epoch_ms_sql = "SELECT TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) DIV 1000"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    server_version_sql = "SELECT VERSION()"

    def begin_for_update(self, connection: Any) -> None:
        # READ COMMITTED: a locking read keeps locks only on the rows it returns, and takes no gap
        # locks, so a take does not block producers inserting into the queue. It applies to the
        # next transaction, which the next statement starts (PyMySQL runs with autocommit off).
        cursor = connection.cursor()
        try:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        finally:
            cursor.close()

    def skip_locked_missing(self, version: str) -> str | None:
        numbers = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
        if numbers is None:
            return f"cannot tell whether server version {version!r} has SKIP LOCKED"
        found = tuple(int(n) for n in numbers.groups())
        mariadb = "mariadb" in version.lower()
        needed = (10, 6, 0) if mariadb else (8, 0, 1)
        if found >= needed:
            return None
        name = "MariaDB" if mariadb else "MySQL"
        return f"{name} {version} has no SKIP LOCKED ({name} {'.'.join(map(str, needed))} and later have it)"

    def insert_ignoring_duplicate(self, table: str, columns: Sequence[str], unique: str) -> str:
        # Not INSERT IGNORE: that would also turn other errors (bad data) into warnings.
        cols = ", ".join(self.quote(c) for c in columns)
        marks = ", ".join("?" for _ in columns)
        key = self.quote(unique)
        return f"INSERT INTO {self.quote(table)} ({cols}) VALUES ({marks}) ON DUPLICATE KEY UPDATE {key} = {key}"

    def upsert(self, table: str, keys: Sequence[str], values: Sequence[str], *, add: bool = False) -> str:
        q = self.quote
        cols = ", ".join(q(c) for c in (*keys, *values))
        marks = ", ".join("?" for _ in (*keys, *values))
        # VALUES(col) is the row that was refused: MariaDB has no other spelling of it.
        sets = ", ".join(f"{q(c)} = {q(c)} + VALUES({q(c)})" if add else f"{q(c)} = VALUES({q(c)})" for c in values)
        return f"INSERT INTO {q(table)} ({cols}) VALUES ({marks}) ON DUPLICATE KEY UPDATE {sets}"

    def is_missing_table(self, exc: BaseException) -> bool:
        return bool(exc.args) and exc.args[0] == 1146  # ER_NO_SUCH_TABLE


DIALECTS: dict[str, Dialect] = {d.name: d for d in (SQLiteDialect(), PostgreSQLDialect(), MySQLDialect())}


def dialect_named(name: str) -> Dialect:
    """The dialect called ``name`` ("sqlite", "postgresql", "mysql"; "postgres" and "mariadb" are aliases)."""
    key = {"postgres": "postgresql", "mariadb": "mysql"}.get(name, name)
    try:
        return DIALECTS[key]
    except KeyError:
        raise ConfigError(
            f"unknown SQL dialect {name!r}; valid: {', '.join(DIALECTS)} (or postgres, mariadb)"
        ) from None
