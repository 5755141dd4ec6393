"""The failed_jobs store and migrations: one suite, run against SQLite, PostgreSQL and MariaDB.

What the store wrote is read back with an independent reader (sqlite-utils, or
the bare driver), not only through the store itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from oxide.config import parse_database_url
from oxide.db import Database, DatabaseError, TableMissing, connect_database
from oxide.db.migrations import Migrator, load_migrations, publish
from oxide.failed import FailedJob, StoredFailedJob
from oxide.failed.store import DatabaseFailedJobProvider
from tests.conftest import ScratchDatabase

NOW = datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
# `vendor:publish queue`: the failed_jobs table, and the jobs table of the database queue driver.
QUEUE_MIGRATIONS = [
    "0001_01_01_000001_create_failed_jobs_table",
    "0001_01_01_000002_create_jobs_table",
    "0001_01_01_000003_create_queue_operations_tables",
]


def failure(uuid: str, **changes: Any) -> FailedJob:
    fields: dict[str, Any] = {
        "uuid": uuid,
        "connection": "redis",
        "queue": "emails",
        "event_name": "auth.user_registered",
        "listener_type": "app.listeners.SendWelcomeEmail",
        "payload": '{"email":"a@b.c","user_id":7}',
        "exception": "Traceback (most recent call last):\n  ...\nRuntimeError: smtp down",
        "failed_at": NOW,
    }
    fields.update(changes)
    return FailedJob(**fields)


def open_database(scratch: ScratchDatabase) -> Database:
    return connect_database(parse_database_url(scratch.url), scratch.root, create=True)


def migrate(scratch: ScratchDatabase, database: Database) -> list[str]:
    directory = scratch.root / "database" / "migrations"
    publish("queue", directory)
    return [m.name for m in Migrator(database).migrate(load_migrations(directory))]


def read_back(scratch: ScratchDatabase, table: str = "failed_jobs") -> list[dict[str, Any]]:
    """Every row of ``table``, read without oxide's database layer."""
    url = parse_database_url(scratch.url)
    if scratch.dialect == "sqlite":
        import sqlite_utils

        return list(sqlite_utils.Database(url.path).table(table).rows_where(order_by="rowid"))
    if scratch.dialect == "postgresql":
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(scratch.url, row_factory=dict_row) as conn:
            return list(conn.execute(f"SELECT * FROM {table} ORDER BY 1"))
    import pymysql
    import pymysql.cursors

    conn = pymysql.connect(host=url.host, port=url.port, user=url.user, database=url.database, charset="utf8mb4")
    with conn, conn.cursor(pymysql.cursors.DictCursor) as cursor:
        cursor.execute(f"SELECT * FROM {table} ORDER BY 1")
        return list(cursor.fetchall())


@pytest.fixture
def database(scratch_db: ScratchDatabase) -> Iterator[Database]:
    db = open_database(scratch_db)
    yield db
    db.close()


@pytest.fixture
def store(scratch_db: ScratchDatabase, database: Database) -> DatabaseFailedJobProvider:
    migrate(scratch_db, database)
    return DatabaseFailedJobProvider(database)


def test_migrate_creates_the_table_once_and_records_it(scratch_db: ScratchDatabase, database: Database) -> None:
    assert not database.table_exists("failed_jobs")
    assert migrate(scratch_db, database) == QUEUE_MIGRATIONS
    assert database.table_exists("failed_jobs")
    assert database.table_exists("jobs")
    assert migrate(scratch_db, database) == []
    recorded = read_back(scratch_db, "oxide_migrations")
    assert [(r["migration"], r["batch"]) for r in recorded] == [(name, 1) for name in QUEUE_MIGRATIONS]


def test_a_logged_failure_is_one_row_with_every_column(
    scratch_db: ScratchDatabase, store: DatabaseFailedJobProvider
) -> None:
    store.log(failure("u-1"))
    [row] = read_back(scratch_db)
    assert {k: v for k, v in row.items() if k not in ("id", "failed_at")} == {
        "uuid": "u-1",
        "connection": "redis",
        "queue": "emails",
        "event_name": "auth.user_registered",
        "listener_type": "app.listeners.SendWelcomeEmail",
        "payload": '{"email":"a@b.c","user_id":7}',
        "exception": "Traceback (most recent call last):\n  ...\nRuntimeError: smtp down",
    }
    # Stored as UTC without a zone; SQLite keeps fixed-width text so that it sorts as time does.
    stored = row["failed_at"]
    assert (stored if isinstance(stored, str) else stored.isoformat(" ")) == "2025-03-04 05:06:07.891011"
    [back] = store.all()
    assert back.failed_at == NOW
    assert back.id == row["id"]
    assert back == StoredFailedJob(**dataclasses.asdict(failure("u-1")), id=row["id"])  # each field from its column


def test_logging_the_same_uuid_twice_keeps_the_first_row(
    scratch_db: ScratchDatabase, store: DatabaseFailedJobProvider
) -> None:
    store.log(failure("dup", exception="first"))
    store.log(failure("dup", exception="second"))
    assert [r["exception"] for r in read_back(scratch_db)] == ["first"]


def test_uuids_differing_only_in_case_are_two_rows(store: DatabaseFailedJobProvider) -> None:
    store.log(failure("ABC"))
    store.log(failure("abc"))
    assert sorted(r.uuid for r in store.all()) == ["ABC", "abc"]


def test_a_failure_without_uuid_gets_its_own(store: DatabaseFailedJobProvider) -> None:
    store.log(failure(""))
    store.log(failure(""))
    uuids = [r.uuid for r in store.all()]
    assert len(uuids) == 2
    assert all(uuids)
    assert uuids[0] != uuids[1]


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        "ünïcödé — 日本語 — emoji 🎉🧪 — rtl עברית",
        "quotes ' \" ` and backslash \\ and ; -- not a comment",
        "x" * 200_000,
        "newlines\r\n\ttabs\x1b",
    ],
    ids=["plain", "unicode", "sql-chars", "200k", "controls"],
)
def test_text_comes_back_exactly(scratch_db: ScratchDatabase, store: DatabaseFailedJobProvider, text: str) -> None:
    store.log(failure("t", payload=text, exception=text, event_name=text[:1000], listener_type=text[:1000]))
    [row] = store.all()
    assert (row.payload, row.exception, row.event_name, row.listener_type) == (text, text, text[:1000], text[:1000])
    assert read_back(scratch_db)[0]["payload"] == text


def test_text_no_server_can_hold_is_escaped_visibly_not_refused(
    scratch_db: ScratchDatabase, store: DatabaseFailedJobProvider
) -> None:
    store.log(failure("nul", exception="before\x00after", payload="lone \udcff surrogate"))
    [row] = store.all()
    # A lone surrogate is not UTF-8 for any server; PostgreSQL text cannot hold U+0000 either.
    assert row.payload == "lone \\udcff surrogate"
    assert row.exception == ("before\\x00after" if scratch_db.dialect == "postgresql" else "before\x00after")


def test_failed_at_is_kept_as_utc_to_the_microsecond(store: DatabaseFailedJobProvider) -> None:
    plus_two = timezone(timedelta(hours=2))
    store.log(failure("aware", failed_at=datetime(2025, 1, 1, 14, 0, 0, 5, tzinfo=plus_two)))
    store.log(failure("naive", failed_at=datetime(2025, 1, 1, 12, 0, 0, 6)))
    by_uuid = {r.uuid: r.failed_at for r in store.all()}
    assert by_uuid == {
        "aware": datetime(2025, 1, 1, 12, 0, 0, 5, tzinfo=UTC),
        "naive": datetime(2025, 1, 1, 12, 0, 0, 6, tzinfo=UTC),
    }


def test_all_find_forget_flush(store: DatabaseFailedJobProvider) -> None:
    for name in ("a", "b", "c"):
        store.log(failure(name))
    rows = store.all()
    assert [r.uuid for r in rows] == ["a", "b", "c"]
    a, b, c = (r.id for r in rows)
    assert [r.uuid for r in store.find([c, 999_999, a])] == ["a", "c"]
    assert store.find([]) == []
    assert store.forget(b) is True
    assert store.forget(b) is False
    assert [r.uuid for r in store.all()] == ["a", "c"]
    assert store.count() == 2
    assert store.flush() == 2
    assert store.all() == []
    assert store.flush() == 0


def test_find_handles_more_ids_than_one_statement_holds(store: DatabaseFailedJobProvider) -> None:
    store.log(failure("only"))
    [row] = store.all()
    assert [r.uuid for r in store.find([*range(-1200, 0), row.id])] == ["only"]
    assert [r.uuid for r in store.find([row.id, *range(row.id + 1, row.id + 1200)])] == ["only"]  # in the first


def test_ids_are_never_reused_after_a_delete(store: DatabaseFailedJobProvider) -> None:
    store.log(failure("first"))
    store.log(failure("second"))
    last = store.all()[-1].id
    assert store.forget(last)
    store.log(failure("third"))
    assert store.all()[-1].id > last


def test_in_queue_and_prune(store: DatabaseFailedJobProvider) -> None:
    store.log(failure("old", queue="low", failed_at=NOW - timedelta(hours=30)))
    store.log(failure("recent", queue="high", failed_at=NOW - timedelta(hours=2)))
    store.log(failure("recent-low", queue="low", failed_at=NOW))
    assert [r.uuid for r in store.in_queue("low")] == ["old", "recent-low"]
    assert [r.uuid for r in store.in_queue("none")] == []
    assert store.prune(NOW - timedelta(hours=24)) == 1
    assert sorted(r.uuid for r in store.all()) == ["recent", "recent-low"]


def test_a_missing_table_names_the_fix(database: Database) -> None:
    store = DatabaseFailedJobProvider(database)
    for call in (lambda: store.log(failure("x")), store.all, store.flush):
        with pytest.raises(TableMissing) as info:
            call()
        assert str(info.value) == (
            f"table 'failed_jobs' does not exist in {database.name}; "
            "create it with: oxide vendor:publish queue && oxide migrate"
        )


def test_the_database_layer_reconnects_after_an_error(database: Database) -> None:
    with pytest.raises(TableMissing):
        database.query("SELECT * FROM no_such_table_here")
    assert database.query("SELECT 1") == [(1,)]


def test_a_failed_migration_statement_leaves_no_record(scratch_db: ScratchDatabase, database: Database) -> None:
    directory = scratch_db.root / "database" / "migrations"
    directory.mkdir(parents=True)
    sections = "".join(
        f"-- dialect: {d}\nCREATE TABLE IF NOT EXISTS good_{scratch_db.dialect} (id INTEGER);\nNOT SQL AT ALL;\n"
        for d in ("sqlite", "postgresql", "mysql")
    )
    (directory / "0002_broken.sql").write_text("-- oxide-migration\n" + sections)
    migrator = Migrator(database)
    with pytest.raises(DatabaseError, match="migration 0002_broken failed and was not recorded"):
        migrator.migrate(load_migrations(directory))
    assert migrator.applied() == set()
    # Running again, once fixed, applies it: IF NOT EXISTS makes a half-applied MySQL migration safe to repeat.
    (directory / "0002_broken.sql").write_text("-- oxide-migration\n" + sections.replace("NOT SQL AT ALL;\n", ""))
    assert [m.name for m in migrator.migrate(load_migrations(directory))] == ["0002_broken"]


def test_migrations_lacking_this_dialect_apply_nothing(scratch_db: ScratchDatabase, database: Database) -> None:
    directory = scratch_db.root / "database" / "migrations"
    publish("queue", directory)
    other = "mysql" if scratch_db.dialect != "mysql" else "sqlite"
    (directory / "0002_other.sql").write_text(f"-- oxide-migration\n-- dialect: {other}\nSELECT 1;\n")
    with pytest.raises(Exception, match=f"no '-- dialect: {scratch_db.dialect}' section"):
        Migrator(database).migrate(load_migrations(directory))
    assert not database.table_exists("failed_jobs")


def test_published_files_are_the_packaged_ones(tmp_path: Path) -> None:
    results = publish("queue", tmp_path)
    assert [r.path.stem for r in results] == QUEUE_MIGRATIONS
    for result in results:
        assert result.status == "written"
        assert result.path.read_text().startswith("-- oxide-migration\n")


def test_the_bare_table_parks_nothing_and_names_itself(store: DatabaseFailedJobProvider) -> None:
    store.log(failure("u-1"))
    assert store.flush_parked() == 0
    assert [r.uuid for r in store.all()] == ["u-1"]
    assert repr(store).startswith("DatabaseFailedJobProvider(")
    assert repr(store).endswith(", table='failed_jobs')")
