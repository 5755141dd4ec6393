"""Faults while a worker records a failure: the database away, locked or without its table.

Through ``provider_for``, as the worker calls it: the record must be parked
(never lost), an error logged, and the record must reach ``failed_jobs`` once
the database answers.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from oxide.config import Config, load_config, parse_database_url
from oxide.db import connect_database
from oxide.db.migrations import Migrator, load_migrations, publish
from oxide.drivers.redis import queue_key
from oxide.failed import FailedJob, provider_for, store_for
from oxide.failed.parking import SPOOL_PATH, ParkingError, ParkingProvider, SpoolParking
from oxide.failed.store import DatabaseFailedJobProvider
from tests.conftest import ScratchDatabase

POSTGRES_DOWN = "postgresql://postgres@127.0.0.1:1/app"  # nothing listens on port 1


def write_config(root: Path, redis_url: str, database_url: str) -> Config:
    (root / "config").mkdir(parents=True, exist_ok=True)
    (root / "config" / "queue.toml").write_text(
        textwrap.dedent(f"""\
            default = "redis"
            [connections.redis]
            driver = "redis"
            url = "{redis_url}"
            [connections.down]
            driver = "redis"
            url = "redis://127.0.0.1:1/13"
            [connections.sync]
            driver = "sync"
            """)
    )
    (root / "config" / "database.toml").write_text(f'default = "main"\n[connections.main]\nurl = "{database_url}"\n')
    return load_config(root / "config", environ={})


def migrate(config: Config) -> None:
    directory = config.root / "database" / "migrations"
    publish("queue", directory)
    database = connect_database(config.database.get(), config.root, create=True)
    Migrator(database).migrate(load_migrations(directory))
    database.close()


def failure(uuid: str, queue: str, connection: str = "redis") -> FailedJob:
    return FailedJob(
        uuid,
        connection,
        queue,
        "auth.user_registered",
        "app.SendWelcomeEmail",
        '{"user_id":7}',
        "Traceback (most recent call last):\nRuntimeError: listener broke — ünïcode 🎉",
        datetime(2025, 2, 3, 4, 5, 6, 7, tzinfo=UTC),
    )


def rows(config: Config) -> list[FailedJob]:
    store = store_for(config)
    return [FailedJob(**{k: getattr(r, k) for k in FailedJob.__dataclass_fields__}) for r in store.all()]


def test_table_missing_parks_in_redis_and_moves_in_after_migrate(
    tmp_path: Path, redis_server_url: str, real_redis: Any, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = write_config(tmp_path, redis_server_url, "sqlite:///database/database.sqlite")
    (tmp_path / "database").mkdir()
    sqlite3.connect(tmp_path / "database" / "database.sqlite").close()  # the database is there; its table is not
    provider = provider_for(config, "redis")
    first, second = failure("f-1", key_prefix + "emails"), failure("f-2", key_prefix + "emails")

    with caplog.at_level(logging.ERROR, logger="oxide.failed"):
        provider.log(first)  # does not raise: the worker may remove the job
    parked_key = queue_key(key_prefix + "emails") + ":failed"
    assert [json.loads(v)["uuid"] for v in real_redis.lrange(parked_key, 0, -1)] == ["f-1"]
    assert "oxide vendor:publish queue && oxide migrate" in caplog.text
    assert f"parked in redis connection 'redis' ({redis_server_url})" in caplog.text

    migrate(config)
    provider.log(second)  # the table answers now: the parked record comes in with this one
    assert sorted(rows(config), key=lambda j: j.uuid) == [first, second]
    assert real_redis.exists(parked_key) == 0


@pytest.mark.parametrize(
    "case",
    [("redis", "redis"), ("sync", "spool"), ("down", "spool")],
    ids=["redis-connection", "sync-connection", "redis-down-too"],
)
def test_database_unreachable_parks_and_a_restarted_worker_moves_it_in(
    scratch_db: ScratchDatabase,
    redis_server_url: str,
    real_redis: Any,
    key_prefix: str,
    case: tuple[str, str],
) -> None:
    connection, parked_in = case  # which connection the job failed on, where its record must wait
    root = scratch_db.root / "app"
    down = write_config(root, redis_server_url, POSTGRES_DOWN)
    job = failure(f"{key_prefix}1", key_prefix + "emails", connection)
    provider_for(down, connection).log(job)

    spool = root / SPOOL_PATH
    parked_key = queue_key(key_prefix + "emails") + ":failed"
    if parked_in == "redis":
        assert real_redis.llen(parked_key) == 1
        assert not spool.exists()
    else:
        assert json.loads(spool.read_text())["uuid"] == job.uuid
        assert real_redis.exists(parked_key) == 0

    # The database is back (here: the config now names one that answers); the worker starts again.
    back = write_config(root, redis_server_url, scratch_db.url)
    migrate(back)
    provider = provider_for(back, connection)
    assert provider.flush_parked() == 1
    assert rows(back) == [job]
    assert not spool.exists()
    assert real_redis.exists(parked_key) == 0


def test_a_locked_sqlite_database_parks_until_the_lock_is_gone(tmp_path: Path, redis_server_url: str) -> None:
    config = write_config(tmp_path, redis_server_url, "sqlite:///database/database.sqlite")
    migrate(config)
    url = parse_database_url("sqlite:///database/database.sqlite")
    # The same classes provider_for composes, with a short busy wait so the test does not sit out 5 s.
    store = DatabaseFailedJobProvider(connect_database(url, tmp_path, timeout_secs=0.05))
    provider = ParkingProvider(store, [SpoolParking(tmp_path / SPOOL_PATH)])

    blocker = sqlite3.connect(tmp_path / "database" / "database.sqlite", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    job = failure("locked-1", "emails")
    provider.log(job)
    assert (tmp_path / SPOOL_PATH).exists()
    assert provider.flush_parked() == 0  # still locked: it stays parked
    blocker.execute("ROLLBACK")
    blocker.close()

    assert provider.flush_parked() == 1
    assert rows(config) == [job]
    assert not (tmp_path / SPOOL_PATH).exists()


def test_with_nowhere_to_park_the_worker_is_told(tmp_path: Path, redis_server_url: str) -> None:
    config = write_config(tmp_path, redis_server_url, POSTGRES_DOWN)
    (tmp_path / "storage").write_text("a file where the spool's directory should be")
    with pytest.raises(ParkingError, match="could not be recorded anywhere"):
        provider_for(config, "down").log(failure("lost?", "emails", "down"))
