"""The database driver on SQLite with no server: the idle wait, setup from config, and its errors.

The behaviour every backend shares is in ``tests/contract``; here is what only
this driver has: polling with an injected sleep, WAL, the migration, the
server-version check, and the messages that name the fix.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from oxide import App
from oxide.cli import main
from oxide.config import ConnectionConfig, load_config, parse_database_url
from oxide.db import Database, DatabaseError, TableMissing
from oxide.db.dialects import MySQLDialect, SQLiteDialect
from oxide.drivers import make_driver
from oxide.drivers.database import DatabaseDriver
from oxide.errors import ConfigError
from oxide.wire import Job

QUEUE_TOML = """
default = "db"
[connections.db]
driver = "database"
poll_interval_secs = 0.5
[failed]
driver = "none"
"""


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An application directory using the built-in database.toml (SQLite under database/)."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "queue.toml").write_text(QUEUE_TOML)
    monkeypatch.chdir(tmp_path)
    for name in ("QUEUE_CONNECTION", "DB_CONNECTION", "DATABASE_URL", "OXIDE_CONFIG_DIR", "OXIDE_APP"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def migrated(app_dir: Path) -> Path:
    assert main(["vendor:publish", "queue"]) == 0
    assert main(["migrate"]) == 0
    return app_dir


class Sleeps:
    """A sleep that returns at once and remembers what it was asked; ``then`` runs after a given call."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self.then: dict[int, object] = {}

    def __call__(self, secs: float) -> None:
        self.calls.append(secs)
        action = self.then.get(len(self.calls))
        if callable(action):
            action()


@pytest.fixture
def driver_and_sleeps(migrated: Path) -> Iterator[tuple[DatabaseDriver, Sleeps]]:
    sleeps = Sleeps()
    driver = DatabaseDriver(load_config("config").connection("db"), sleep=sleeps)
    yield driver, sleeps
    driver.close()


def test_an_idle_take_polls_every_interval_until_the_timeout(driver_and_sleeps: tuple[DatabaseDriver, Sleeps]) -> None:
    driver, sleeps = driver_and_sleeps
    assert driver.pop(["default"], 1.2) is None
    assert sleeps.calls == [0.5, 0.5, pytest.approx(0.2)]


def test_a_job_pushed_during_the_wait_is_taken_at_the_next_poll(
    driver_and_sleeps: tuple[DatabaseDriver, Sleeps],
) -> None:
    driver, sleeps = driver_and_sleeps
    producer = DatabaseDriver(load_config("config").connection("db"))
    sleeps.then[2] = lambda: producer.push("low", "arrived")
    delivery = driver.pop(["high", "low"], 5)
    assert delivery is not None
    assert (delivery.queue, delivery.body) == ("low", b"arrived")
    assert sleeps.calls == [0.5, 0.5]
    producer.close()


def test_a_take_with_no_wait_never_sleeps(driver_and_sleeps: tuple[DatabaseDriver, Sleeps]) -> None:
    driver, sleeps = driver_and_sleeps
    assert driver.pop(["default"], 0) is None
    assert driver.pop([], 3) is None
    assert sleeps.calls == []


def test_the_app_pushes_through_the_configured_connection_and_a_driver_takes_it(migrated: Path) -> None:
    app = App(config_dir="config")
    job = Job("auth.user_registered", "myapp.listeners.SendWelcomeEmail", {"email": "a@b.c", "user_id": 7})
    app.push(None, "emails", job)
    driver = make_driver(load_config("config").connection(), app.run_encoded)
    delivery = driver.pop(["emails"], 0)
    assert delivery is not None
    assert delivery.body == job.to_json().encode()
    assert driver.ack(delivery) is True
    app.close()
    driver.close()


def test_the_driver_puts_its_sqlite_file_in_wal_mode(migrated: Path) -> None:
    file = migrated / "database" / "database.sqlite"
    with sqlite3.connect(file) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # as migrate left it
    driver = DatabaseDriver(load_config("config").connection("db"))
    assert driver.size("default") == 0
    driver.close()
    with sqlite3.connect(file) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_missing_table_names_the_fix(app_dir: Path) -> None:
    (app_dir / "database").mkdir()
    sqlite3.connect(app_dir / "database" / "database.sqlite").close()
    driver = DatabaseDriver(load_config("config").connection("db"))
    for call in (lambda: driver.push("q", "x"), lambda: driver.pop(["q"], 0), lambda: driver.size("q")):
        with pytest.raises(TableMissing) as error:
            call()
        assert str(error.value).startswith("queue connection 'db': table 'jobs' does not exist in database 'sqlite' (")
        assert str(error.value).endswith("; create it with: oxide vendor:publish queue && oxide migrate")
    driver.close()


def test_a_missing_database_file_names_the_fix_and_is_not_created(app_dir: Path) -> None:
    driver = DatabaseDriver(load_config("config").connection("db"))
    with pytest.raises(
        DatabaseError, match=r"does not exist; create it with: oxide vendor:publish queue && oxide migrate"
    ):
        driver.push("q", "x")
    assert not (app_dir / "database" / "database.sqlite").exists()


def test_a_driver_needs_its_database_resolved() -> None:
    with pytest.raises(ConfigError, match="queue connection 'x': no database connection was resolved for it"):
        DatabaseDriver(ConnectionConfig(name="x", driver="database"))


class OldMariaDB(SQLiteDialect):
    """SQLite standing in for a MariaDB that reports a version without SKIP LOCKED."""

    server_version_sql = "SELECT '10.5.9-MariaDB-log'"
    skip_locked_missing = MySQLDialect.skip_locked_missing


def test_a_server_without_skip_locked_is_refused_before_anything_is_written(migrated: Path) -> None:
    file = migrated / "database" / "database.sqlite"
    database = Database(lambda: sqlite3.connect(file, isolation_level=None), OldMariaDB(), name="old")
    driver = DatabaseDriver(ConnectionConfig(name="db", driver="database"), database=database)
    with pytest.raises(ConfigError) as error:
        driver.push("q", "x")
    assert str(error.value) == (
        "queue connection 'db' on old: MariaDB 10.5.9-MariaDB-log has no SKIP LOCKED (MariaDB 10.6.0 and later have "
        "it); the database driver needs it so that several workers can take jobs at once. Use a newer server, or the "
        "redis driver."
    )
    with sqlite3.connect(file) as raw:
        assert raw.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0


def test_a_delivery_of_another_driver_is_refused(driver_and_sleeps: tuple[DatabaseDriver, Sleeps]) -> None:
    from oxide.drivers import Delivery

    driver, _ = driver_and_sleeps
    with pytest.raises(TypeError, match="not a delivery of the database driver"):
        driver.ack(Delivery("q", b"x", receipt=None))


def test_the_config_url_reaches_the_driver_with_no_password_in_its_name(tmp_path: Path) -> None:
    url = parse_database_url("postgresql://app:s3cret@127.0.0.1:1/app")
    driver = DatabaseDriver(ConnectionConfig(name="db", driver="database", connection="pgsql", database=url))
    assert "s3cret" not in repr(driver)
    assert driver.database.dialect.name == "postgresql"


def test_a_job_taken_in_one_thread_is_extended_and_acknowledged_from_another(migrated: Path) -> None:
    # The worker takes in its main thread while its heartbeat thread extends the reservations; on
    # SQLite, a connection refuses by default to be used by a thread other than its creator's.
    import threading

    app = App()
    driver = app.driver("db")
    driver.push("default", Job("e", "l.L", {}).to_json())
    delivery = driver.pop(["default"], 0)
    assert delivery is not None
    answers: list[object] = []

    def heartbeat() -> None:
        try:
            answers.append(driver.extend(delivery))
            answers.append(driver.ack(delivery))
        except Exception as exc:
            answers.append(exc)

    thread = threading.Thread(target=heartbeat)
    thread.start()
    thread.join()
    assert answers == [True, True]
    assert driver.size("default") == 0
    app.close()
