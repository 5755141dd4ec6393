"""The DB-API layer and the migration file format, without servers."""

from __future__ import annotations

import sqlite3
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path

import pytest

from oxide.config import parse_database_url
from oxide.db import Database, DatabaseError, connect_database
from oxide.db.dialects import bind, dialect_named
from oxide.db.migrations import HEADER, Migration, MigrationError, Migrator, load_migrations, parse_migration, publish
from oxide.errors import ConfigError
from oxide.failed import FailedJob
from oxide.failed.store import DatabaseFailedJobProvider


@pytest.mark.parametrize(
    ("style", "sql", "params"),
    [
        ("qmark", "SELECT a FROM t WHERE b = ? AND c = ?", [1, 2]),
        ("format", "SELECT a FROM t WHERE b = %s AND c = %s", [1, 2]),
        ("pyformat", "SELECT a FROM t WHERE b = %s AND c = %s", [1, 2]),
        ("numeric", "SELECT a FROM t WHERE b = :1 AND c = :2", [1, 2]),
        ("named", "SELECT a FROM t WHERE b = :p1 AND c = :p2", {"p1": 1, "p2": 2}),
    ],
)
def test_placeholders_follow_the_paramstyle(style: str, sql: str, params: object) -> None:
    assert bind("SELECT a FROM t WHERE b = ? AND c = ?", [1, 2], style) == (sql, params)


def test_format_styles_double_a_literal_percent() -> None:
    assert bind("SELECT '100%' WHERE x = ?", [1], "format") == ("SELECT '100%%' WHERE x = %s", [1])


def test_placeholder_count_must_match() -> None:
    with pytest.raises(ValueError, match="2 placeholders but 1 parameters"):
        bind("? ?", [1], "format")
    with pytest.raises(ValueError, match="unknown DB-API paramstyle"):
        bind("?", [1], "dollar")


def test_identifiers_are_quoted_per_dialect_and_only_plain_ones_accepted() -> None:
    assert dialect_named("sqlite").quote("failed_jobs") == '"failed_jobs"'
    assert dialect_named("postgres").quote("queue") == '"queue"'
    assert dialect_named("mariadb").quote("queue") == "`queue`"
    with pytest.raises(ValueError, match="not a plain SQL identifier"):
        dialect_named("sqlite").quote('x"; DROP TABLE y; --')


def test_unknown_dialect_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="unknown SQL dialect 'oracle'; valid: sqlite, postgresql, mysql"):
        dialect_named("oracle")


@pytest.mark.parametrize(("scheme", "extra"), [("postgresql", "postgres"), ("mysql", "mysql")])
def test_a_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch, scheme: str, extra: str) -> None:
    module = "psycopg" if scheme == "postgresql" else "pymysql"
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    url = parse_database_url(f"{scheme}://root@127.0.0.1/app")
    with pytest.raises(ConfigError, match=rf"pip install 'oxide-queue\[{extra}\]'"):
        connect_database(url, Path("."))


def test_errors_never_show_the_password(tmp_path: Path) -> None:
    url = parse_database_url("postgresql://app:s3cr3t-pw@127.0.0.1:1/app")
    database = connect_database(url, tmp_path, timeout_secs=1)
    with pytest.raises(DatabaseError) as caught:
        database.query("SELECT 1")
    assert "s3cr3t-pw" not in str(caught.value)
    assert "app:***@127.0.0.1:1/app" in str(caught.value)
    # `oxide -v` prints the traceback: the driver's own exception must not be in it.
    assert "s3cr3t-pw" not in "".join(traceback.format_exception(caught.value))
    assert "s3cr3t-pw" not in repr(database)


def test_a_driver_message_holding_the_password_is_redacted() -> None:
    def connect() -> sqlite3.Connection:
        raise RuntimeError("login failed for password hunter2")

    database = Database(connect, "sqlite", name="db", secrets=["hunter2"])
    with pytest.raises(DatabaseError, match=r"login failed for password \*\*\*"):
        database.query("SELECT 1")


def test_a_worker_does_not_create_a_missing_sqlite_file(tmp_path: Path) -> None:
    url = parse_database_url("sqlite:///database/database.sqlite")
    with pytest.raises(
        DatabaseError, match="does not exist; create it with: oxide vendor:publish queue && oxide migrate"
    ):
        connect_database(url, tmp_path).query("SELECT 1")
    assert not (tmp_path / "database" / "database.sqlite").exists()


def _queue_migrations(tmp_path: Path) -> list[Migration]:
    directory = tmp_path / "migrations"
    publish("queue", directory)
    return list(load_migrations(directory))


@pytest.mark.parametrize("paramstyle", ["qmark", "named", "numeric"])
def test_any_dbapi_factory_and_dialect_name_serve_the_store(tmp_path: Path, paramstyle: str) -> None:
    # A library user's own connection: sqlite3 in its default (implicit transaction) mode, and the
    # paramstyle their driver speaks (sqlite3 accepts qmark, named and numeric).
    path = tmp_path / "mine.sqlite"
    database = Database(lambda: sqlite3.connect(path), "sqlite", paramstyle=paramstyle)
    Migrator(database).migrate(_queue_migrations(tmp_path))
    store = DatabaseFailedJobProvider(database)
    store.log(FailedJob("u", "redis", "q", "e", "l", "{}", "boom", datetime(2025, 1, 1, tzinfo=UTC)))
    [row] = store.all()
    assert (row.uuid, row.exception) == ("u", "boom")
    assert store.forget(row.id)
    with sqlite3.connect(path) as check:
        assert check.execute("SELECT COUNT(*) FROM failed_jobs").fetchone() == (0,)


def test_migration_sections_split_into_statements(tmp_path: Path) -> None:
    text = (
        f"{HEADER}\n-- about this migration\n\n-- dialect: sqlite\nCREATE TABLE a (\n  x INTEGER\n);\n"
        "-- a comment inside\nCREATE INDEX i ON a (x);\n-- dialect: postgresql\nCREATE TABLE a (x INT);\n"
    )
    migration = parse_migration(tmp_path / "0005_make_a.sql", text)
    assert migration.name == "0005_make_a"
    assert migration.for_dialect("sqlite") == ("CREATE TABLE a (\n  x INTEGER\n)", "CREATE INDEX i ON a (x)")
    assert migration.for_dialect("postgresql") == ("CREATE TABLE a (x INT)",)
    with pytest.raises(MigrationError, match="no '-- dialect: mysql' section; it has: sqlite, postgresql"):
        migration.for_dialect("mysql")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("CREATE TABLE a (x INT);\n", "not an oxide migration"),
        (f"{HEADER}\nCREATE TABLE a (x INT);\n", "SQL before the first '-- dialect: NAME' line"),
        (f"{HEADER}\n-- dialect: oracle\n", "unknown dialect 'oracle'"),
        (f"{HEADER}\n-- dialect: sqlite\nSELECT 1\n", "last statement does not end with ';'"),
        (f"{HEADER}\n-- dialect: sqlite\nSELECT 1\n-- dialect: mysql\n", "does not end with ';'"),
        (f"{HEADER}\n-- dialect: sqlite\n-- dialect: sqlite\n", "second '-- dialect: sqlite' section"),
    ],
)
def test_malformed_migrations_are_refused_with_the_line(tmp_path: Path, text: str, error: str) -> None:
    with pytest.raises(MigrationError, match=error):
        parse_migration(tmp_path / "m.sql", text)


def test_other_tools_sql_files_are_not_migrations(tmp_path: Path) -> None:
    (tmp_path / "0000_theirs.sql").write_text("CREATE TABLE theirs (x INT);\n")
    publish("queue", tmp_path)
    assert [m.name for m in load_migrations(tmp_path)] == [
        "0001_01_01_000001_create_failed_jobs_table",
        "0001_01_01_000002_create_jobs_table",
        "0001_01_01_000003_create_queue_operations_tables",
    ]
    assert load_migrations(tmp_path / "absent") == []


def test_publish_is_idempotent_and_keeps_an_edited_copy(tmp_path: Path) -> None:
    first, jobs, ops = publish("queue", tmp_path)
    assert (first.status, jobs.status, ops.status) == ("written", "written", "written")
    assert [r.status for r in publish("queue", tmp_path)] == ["unchanged", "unchanged", "unchanged"]
    first.path.write_text(first.path.read_text() + "-- my note\n")
    assert [r.status for r in publish("queue", tmp_path)] == ["kept", "unchanged", "unchanged"]
    assert first.path.read_text().endswith("-- my note\n")
    assert [r.status for r in publish("queue", tmp_path, force=True)] == ["overwritten", "unchanged", "unchanged"]
    assert not first.path.read_text().endswith("-- my note\n")
    # no temporary file left
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.path.name, jobs.path.name, ops.path.name]
