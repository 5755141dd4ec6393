"""The database driver on each database (``scratch_db``): what its rows look like and how takes lock.

The behaviour a worker sees is the shared suite in ``tests/contract``; this file
checks what is particular to the table: one state per row, text an operator can
read, the server's clock in milliseconds, migration batches past the per-take
limit, and takes on PostgreSQL and MariaDB that pass over a locked row at once.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oxide.config import ConnectionConfig, parse_database_url
from oxide.db import TableMissing, connect_database
from oxide.db.migrations import Migrator, load_migrations, publish
from oxide.drivers.database import MIGRATE_LIMIT, DatabaseDriver
from tests.conftest import ScratchDatabase


class Clock:
    def __init__(self) -> None:
        self.now_ms = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now_ms


def make_driver(scratch: ScratchDatabase, clock: Clock | None = None, **settings: Any) -> DatabaseDriver:
    url = parse_database_url(scratch.url)
    if url.dialect == "sqlite":
        url = dataclasses.replace(url, path=str(scratch.root / (url.path or "")))
    config = ConnectionConfig(name="db", driver="database", connection="test", database=url, **settings)
    return DatabaseDriver(config, clock_ms=clock, sleep=lambda _s: None)


def migrate(scratch: ScratchDatabase) -> None:
    database = connect_database(parse_database_url(scratch.url), scratch.root, create=True)
    directory = scratch.root / "database" / "migrations"
    publish("queue", directory)
    Migrator(database).migrate(load_migrations(directory))
    database.close()


@pytest.fixture
def driver(scratch_db: ScratchDatabase) -> Iterator[DatabaseDriver]:
    migrate(scratch_db)
    d = make_driver(scratch_db)
    yield d
    d.close()


def rows(driver: DatabaseDriver) -> list[dict[str, Any]]:
    q = driver.database.dialect.quote
    columns = (
        "id",
        "queue",
        "payload",
        "expirations",
        "line_position",
        "available_at",
        "reserved_until",
        "reservation",
    )
    found = driver.database.query(f"SELECT {', '.join(q(c) for c in columns)} FROM {q('jobs')} ORDER BY {q('id')}")
    return [dict(zip(columns, row, strict=True)) for row in found]


def test_every_row_is_in_exactly_one_state_and_its_payload_is_readable_text(scratch_db: ScratchDatabase) -> None:
    migrate(scratch_db)
    clock = Clock()
    driver = make_driver(scratch_db, clock, visibility_timeout_secs=10)
    driver.push_many("a", ['{"n":1}', '{"n":2}', '{"n":3}'])
    driver.later("a", ['{"n":4}'], 5)
    held = driver.pop(["a"], 0)
    expiring = driver.pop(["a"], 0)
    assert held is not None
    assert expiring is not None
    assert driver.release(held, '{"n":1,"attempts":2}', 30)
    clock.now_ms += 10_000
    assert driver.pop(["a"], 0) is not None  # expiring comes back and is taken again; n=4 joins the line
    states = {}
    for row in rows(driver):
        set_columns = [c for c in ("line_position", "available_at", "reserved_until") if row[c] is not None]
        assert len(set_columns) == 1, row
        assert (row["reservation"] is not None) == (set_columns == ["reserved_until"]), row
        states[row["payload"]] = (set_columns[0], row["expirations"])
    assert states == {
        '{"n":1,"attempts":2}': ("available_at", 0),
        '{"n":2}': ("reserved_until", 1),
        '{"n":3}': ("line_position", 0),
        '{"n":4}': ("line_position", 0),
    }
    driver.close()


def test_a_missing_table_names_the_fix(scratch_db: ScratchDatabase) -> None:
    connect_database(parse_database_url(scratch_db.url), scratch_db.root, create=True).query("SELECT 1")
    driver = make_driver(scratch_db)
    with pytest.raises(
        TableMissing, match=r"table 'jobs' does not exist in .*oxide vendor:publish queue && oxide migrate"
    ):
        driver.pop(["q"], 0)
    driver.close()


def test_times_are_the_servers_clock_in_milliseconds(driver: DatabaseDriver) -> None:
    before_ms = time.time() * 1000
    driver.push("q", "x")
    q = driver.database.dialect.quote
    [(created_ms,)] = driver.database.query(f"SELECT {q('created_at')} FROM {q('jobs')}")
    # Milliseconds since the epoch, not seconds or microseconds: within an hour of this machine's clock.
    assert abs(int(created_ms) - before_ms) < 3_600_000


def test_more_due_jobs_than_one_take_moves_keep_their_order(scratch_db: ScratchDatabase) -> None:
    migrate(scratch_db)
    clock = Clock()
    driver = make_driver(scratch_db, clock)
    count = MIGRATE_LIMIT * 2 + 50
    driver.later("q", [str(n) for n in range(count)], 1)
    clock.now_ms += 1000
    taken = []
    while (delivery := driver.pop(["q"], 0)) is not None:
        assert driver.ack(delivery)
        taken.append(int(delivery.body))
    assert taken == list(range(count))
    driver.close()


@pytest.mark.parametrize("scratch_db", ["postgresql", "mysql"], indirect=True)
def test_a_take_passes_over_the_row_another_take_holds_at_once_and_keeps_priority(scratch_db: ScratchDatabase) -> None:
    migrate(scratch_db)
    driver = make_driver(scratch_db)
    driver.push_many("high", ["h1", "h2"])
    driver.push_many("low", ["l1"])
    holder = make_driver(scratch_db)
    # The holder stops in the middle of its own take: the locking read has run, the update not yet.
    # (On MariaDB, one SELECT ordering both queues would have locked all three rows here.)
    with holder.database.transaction(for_update=True) as session:
        head = holder._head(session, ["high", "low"])
        meanwhile = [driver.pop(["high", "low"], 0) for _ in range(3)]
    after = driver.pop(["high", "low"], 0)
    assert head is not None
    assert head[2] == "h1"
    # Not blocked on h1, and not sent down to the low queue while h2 waits.
    assert [d.body if d else None for d in meanwhile] == [b"h2", b"l1", None]
    assert after is not None
    assert after.body == b"h1"
    driver.close()
    holder.close()


def test_published_migration_is_the_one_for_this_table(tmp_path: Path) -> None:
    results = publish("queue", tmp_path)
    [jobs] = [m for m in load_migrations(tmp_path) if m.name.endswith("_create_jobs_table")]
    assert {r.path.name for r in results} >= {jobs.path.name}
    for dialect in ("sqlite", "postgresql", "mysql"):
        statements = jobs.for_dialect(dialect)
        assert statements[0].startswith("CREATE TABLE IF NOT EXISTS jobs")
        assert all(column in statements[0] for column in ("line_position", "available_at", "reserved_until"))
