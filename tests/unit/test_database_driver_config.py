"""``driver = "database"`` in queue.toml: keys, defaults, and errors that name file, key and choices."""

from __future__ import annotations

from pathlib import Path

import pytest

from oxide.config import DRIVER_KEYS, load_config
from oxide.db.dialects import MySQLDialect, PostgreSQLDialect
from oxide.errors import ConfigError

DATABASE_TOML = """
default = "sqlite"
[connections.sqlite]
url = "sqlite:///database/database.sqlite"
[connections.pgsql]
url = "postgresql://postgres@127.0.0.1:5432/app"
[connections.mem]
url = "sqlite://:memory:"
"""


def config_dir(tmp_path: Path, block: str, database_toml: str = DATABASE_TOML) -> Path:
    directory = tmp_path / "config"
    directory.mkdir(exist_ok=True)
    (directory / "queue.toml").write_text(f'default = "jobs"\n[connections.jobs]\ndriver = "database"\n{block}\n')
    (directory / "database.toml").write_text(database_toml)
    return directory


def test_the_driver_reads_exactly_its_keys() -> None:
    assert DRIVER_KEYS["database"] == {
        "driver",
        "connection",
        "table",
        "queue",
        "poll_interval_secs",
        "visibility_timeout_secs",
        "block_timeout_secs",
        "concurrency",
        "stop_timeout_secs",
    }


def test_defaults_use_the_default_database_connection_and_the_jobs_table(tmp_path: Path) -> None:
    conn = load_config(config_dir(tmp_path, ""), environ={}).connection()
    assert (conn.driver, conn.connection, conn.table, conn.queue) == ("database", "sqlite", "jobs", "default")
    assert conn.visibility_timeout_secs == 90
    assert conn.database is not None
    # The SQLite file sits under the application (the config directory's parent), as failed_jobs does.
    assert conn.database.path == str(tmp_path.resolve() / "database" / "database.sqlite")


def test_every_setting_is_read_and_typed(tmp_path: Path) -> None:
    block = (
        'connection = "pgsql"\ntable = "queue_jobs"\nqueue = "emails"\n'
        'poll_interval_secs = "0.25"\nvisibility_timeout_secs = 30\nblock_timeout_secs = 2'
    )
    conn = load_config(config_dir(tmp_path, block), environ={}).connection("jobs")
    assert conn.database is not None
    assert (conn.connection, conn.database.dialect, conn.table, conn.queue) == (
        "pgsql",
        "postgresql",
        "queue_jobs",
        "emails",
    )
    assert (conn.poll_interval_secs, conn.visibility_timeout_secs, conn.block_timeout_secs) == (0.25, 30.0, 2.0)


def test_the_database_connection_may_come_from_the_environment(tmp_path: Path) -> None:
    directory = config_dir(tmp_path, 'connection = "${QUEUE_DB:-sqlite}"')
    assert load_config(directory, environ={"QUEUE_DB": "pgsql"}).connection().connection == "pgsql"
    with pytest.raises(ConfigError) as error:
        load_config(directory, environ={"QUEUE_DB": "oracle"})
    assert str(error.value) == (
        f"{directory / 'queue.toml'}: connections.jobs.connection: {directory / 'database.toml'} has no database "
        "connection named 'oracle' (from ${QUEUE_DB:-sqlite}); defined: mem, pgsql, sqlite"
    )


def test_without_a_connection_key_a_missing_default_database_connection_is_named(tmp_path: Path) -> None:
    directory = config_dir(tmp_path, "", database_toml='default = "gone"\n')
    (directory / "queue.toml").write_text(
        'default = "jobs"\n[connections.jobs]\ndriver = "database"\n[failed]\ndriver = "none"\n'
    )
    with pytest.raises(ConfigError) as error:
        load_config(directory, environ={})
    assert str(error.value) == (
        f"{directory / 'queue.toml'}: connections.jobs: no 'connection' key, so the default database connection: "
        f"{directory / 'database.toml'} has no database connection named 'gone'; defined: (none)"
    )


BAD_SETTINGS = {
    "unknown-key": (
        'url = "redis://x"',
        "connections.jobs.url: not a setting of the database driver; valid keys: block_timeout_secs, concurrency, "
        "connection, driver, poll_interval_secs, queue, stop_timeout_secs, table, visibility_timeout_secs",
    ),
    "table": (
        'table = "jobs; DROP TABLE x"',
        "connections.jobs.table: expected a plain SQL table name ([A-Za-z_][A-Za-z0-9_]*, at most 63 characters), "
        "got 'jobs; DROP TABLE x'",
    ),
    "poll-0": (
        "poll_interval_secs = 0",
        "connections.jobs.poll_interval_secs: expected a number > 0, got 0 "
        "(an idle worker would query the database without pause)",
    ),
    "visibility-0": (
        "visibility_timeout_secs = 0",
        "connections.jobs.visibility_timeout_secs: expected a number > 0, got 0 "
        "(the database driver always holds a taken job for a while)",
    ),
    "block-0": (
        "block_timeout_secs = 0",
        "connections.jobs.block_timeout_secs: expected a number > 0, got 0 (a worker would never wait for a job)",
    ),
    "not-a-number": (
        'visibility_timeout_secs = "soon"',
        "connections.jobs.visibility_timeout_secs: expected a number, got 'soon'",
    ),
    "queue-name": ('queue = "a:b"', "connections.jobs.queue: 'a:b' is not a valid queue name"),
    "memory": (
        'connection = "mem"',
        "connections.jobs.connection: database connection 'mem' is sqlite://:memory:, which lives inside one "
        "connection only; a queue needs a file (sqlite:///database/database.sqlite) or a server",
    ),
}


@pytest.mark.parametrize(("block", "message"), list(BAD_SETTINGS.values()), ids=list(BAD_SETTINGS))
def test_bad_settings_name_the_file_the_key_and_what_was_expected(tmp_path: Path, block: str, message: str) -> None:
    directory = config_dir(tmp_path, block)
    with pytest.raises(ConfigError) as error:
        load_config(directory, environ={})
    assert str(error.value).startswith(f"{directory / 'queue.toml'}: {message}")


def test_a_bad_table_name_from_the_environment_names_its_variable(tmp_path: Path) -> None:
    directory = config_dir(tmp_path, 'table = "${QUEUE_TABLE:-jobs}"')
    assert load_config(directory, environ={"QUEUE_TABLE": "queue_jobs"}).connection().table == "queue_jobs"
    with pytest.raises(ConfigError) as error:
        load_config(directory, environ={"QUEUE_TABLE": "queue-jobs"})
    assert str(error.value) == (
        f"{directory / 'queue.toml'}: connections.jobs.table: expected a plain SQL table name "
        "([A-Za-z_][A-Za-z0-9_]*, at most 63 characters), got 'queue-jobs' (from ${QUEUE_TABLE:-jobs})"
    )


def test_an_unknown_driver_lists_database_among_the_valid_ones(tmp_path: Path) -> None:
    directory = config_dir(tmp_path, "")
    (directory / "queue.toml").write_text('default = "x"\n[connections.x]\ndriver = "databse"\n')
    with pytest.raises(ConfigError, match="valid drivers: database, redis, sync"):
        load_config(directory, environ={})


@pytest.mark.parametrize(
    ("version", "missing"),
    [
        ("10.11.19-MariaDB-0+deb12u1", None),
        ("10.6.0-MariaDB", None),
        ("10.5.23-MariaDB-log", "MariaDB 10.5.23-MariaDB-log has no SKIP LOCKED (MariaDB 10.6.0 and later have it)"),
        ("8.0.36", None),
        ("8.0.0", "MySQL 8.0.0 has no SKIP LOCKED (MySQL 8.0.1 and later have it)"),
        ("5.7.44-log", "MySQL 5.7.44-log has no SKIP LOCKED (MySQL 8.0.1 and later have it)"),
        ("strange", "cannot tell whether server version 'strange' has SKIP LOCKED"),
    ],
)
def test_mysql_family_servers_without_skip_locked_are_named(version: str, missing: str | None) -> None:
    assert MySQLDialect().skip_locked_missing(version) == missing


def test_postgresql_before_9_5_has_no_skip_locked() -> None:
    assert PostgreSQLDialect().skip_locked_missing("150020") is None
    assert PostgreSQLDialect().skip_locked_missing("90500") is None
    assert (
        PostgreSQLDialect().skip_locked_missing("90424")
        == "PostgreSQL 90424 has no SKIP LOCKED (9.5 and later have it)"
    )
