"""Every error path of ``oxide/config.py``.

Each message must name the file, the key, what was expected and, where there
is a fixed set, the valid choices (SPEC §2). A case lists the file it should
name, the key, and the other fragments the message must hold.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from oxide.config import DatabaseConfig, load_config, load_dotenv, parse_database_url
from oxide.errors import ConfigError, OxideError

pytestmark = pytest.mark.usefixtures("isolated_cwd")


@dataclass(frozen=True)
class Case:
    id: str
    file: str  # "queue.toml" or "database.toml": which file the message must name
    text: str  # that file's content
    key: str | None  # the key the message must name right after the file
    fragments: tuple[str, ...]  # further text the message must hold
    env: tuple[tuple[str, str], ...] = ()
    absent: tuple[str, ...] = ()  # text that must NOT appear (secrets)


QUEUE = "queue.toml"
DB = "database.toml"
SYNC_ONLY = '[connections.sync]\ndriver = "sync"\n'
VALID_DRIVERS = "valid drivers: database, redis, sync"
DB_URL_CHOICES = (
    "sqlite:///relative/path",
    "sqlite:////absolute/path",
    "sqlite://:memory:",
    "postgresql://",
    "mysql://",
    "mariadb://",
)

CASES = [
    # queue.toml: the file itself
    Case("queue-not-toml", QUEUE, "default = \n", None, ("not valid TOML",)),
    # queue.toml: connections
    Case("connections-not-table", QUEUE, "connections = 5\n", "connections", ("expected a table", "int")),
    Case("connection-not-table", QUEUE, '[connections]\nredis = "x"\n', "connections.redis", ("expected a table",)),
    Case(
        "unknown-driver",
        QUEUE,
        '[connections.x]\ndriver = "kafka"\n',
        "connections.x.driver",
        ("unknown driver 'kafka'", VALID_DRIVERS),
    ),
    Case("missing-driver", QUEUE, '[connections.x]\nqueue = "q"\n', "connections.x.driver", (VALID_DRIVERS,)),
    Case(
        "unknown-driver-from-env",
        QUEUE,
        '[connections.x]\ndriver = "${QDRIVER}"\n',
        "connections.x.driver",
        ("unknown driver 'kafka'", "(from ${QDRIVER})", VALID_DRIVERS),
        env=(("QDRIVER", "kafka"),),
    ),
    Case(
        "key-of-another-driver",
        QUEUE,
        '[connections.s]\ndriver = "sync"\nurl = "redis://h"\n',
        "connections.s.url",
        ("not a setting of the sync driver", "valid keys: driver, queue"),
    ),
    Case(
        "misspelt-redis-key",
        QUEUE,
        '[connections.redis]\ndriver = "redis"\nblock_timeout = 5\n',
        "connections.redis.block_timeout",
        ("not a setting of the redis driver", "block_timeout_secs", "visibility_timeout_secs"),
    ),
    Case(
        "number-not-a-number",
        QUEUE,
        '[connections.redis]\ndriver = "redis"\nblock_timeout_secs = "abc"\n',
        "connections.redis.block_timeout_secs",
        ("expected a number, got 'abc'",),
    ),
    Case(
        "number-from-env-not-a-number",
        QUEUE,
        '[connections.redis]\ndriver = "redis"\nblock_timeout_secs = "${BLOCK}"\n',
        "connections.redis.block_timeout_secs",
        ("expected a number, got 'abc'", "(from ${BLOCK})"),
        env=(("BLOCK", "abc"),),
    ),
    Case(
        "number-from-unset-env",
        QUEUE,
        '[connections.redis]\ndriver = "redis"\nblock_timeout_secs = "${BLOCK}"\n',
        "connections.redis.block_timeout_secs",
        ("expected a number, got ''", "(from ${BLOCK})"),
    ),
    Case(
        "number-is-a-bool",
        QUEUE,
        '[connections.redis]\ndriver = "redis"\nvisibility_timeout_secs = true\n',
        "connections.redis.visibility_timeout_secs",
        ("expected a number, got True",),
    ),
    Case(
        "number-is-a-list",
        QUEUE,
        '[connections.redis]\ndriver = "redis"\npoll_interval_secs = [1]\n',
        "connections.redis.poll_interval_secs",
        ("expected a number, got [1]",),
    ),
    Case(
        "number-negative",
        QUEUE,
        '[connections.redis]\ndriver = "redis"\nvisibility_timeout_secs = -1\n',
        "connections.redis.visibility_timeout_secs",
        ("expected a number >= 0, got -1",),
    ),
    Case(
        "number-nan",
        QUEUE,
        '[connections.redis]\ndriver = "redis"\nvisibility_timeout_secs = "nan"\n',
        "connections.redis.visibility_timeout_secs",
        ("expected a number >= 0, got 'nan'",),
    ),
    Case(
        "number-infinite",
        QUEUE,
        '[connections.redis]\ndriver = "redis"\nvisibility_timeout_secs = inf\n',
        "connections.redis.visibility_timeout_secs",
        ("expected a number >= 0, got inf",),
    ),
    Case(
        "block-timeout-zero-would-block-forever",
        QUEUE,
        '[connections.redis]\ndriver = "redis"\nblock_timeout_secs = 0\n',
        "connections.redis.block_timeout_secs",
        ("expected a number > 0, got 0",),
    ),
    Case(
        "poll-interval-zero-would-block-forever",
        QUEUE,
        '[connections.redis]\ndriver = "redis"\npoll_interval_secs = 0\n',
        "connections.redis.poll_interval_secs",
        ("expected a number > 0, got 0",),
    ),
    Case(
        "whole-number-given-a-fraction-string",
        QUEUE,
        '[connections.redis]\ndriver = "redis"\nprefetch = "1.5"\n',
        "connections.redis.prefetch",
        ("expected a whole number, got '1.5'",),
    ),
    Case(
        "whole-number-given-a-float",
        QUEUE,
        '[connections.redis]\ndriver = "redis"\nprefetch = 2.5\n',
        "connections.redis.prefetch",
        ("expected a whole number, got 2.5",),
    ),
    Case(
        "whole-number-below-one",
        QUEUE,
        '[connections.redis]\ndriver = "redis"\nprefetch = 0\n',
        "connections.redis.prefetch",
        ("expected a whole number >= 1, got 0",),
    ),
    Case(
        "concurrency-below-one",
        QUEUE,
        '[connections.redis]\ndriver = "redis"\nconcurrency = 0\n',
        "connections.redis.concurrency",
        ("expected a whole number >= 1, got 0",),
    ),
    Case(
        "stop-timeout-negative",
        QUEUE,
        '[connections.redis]\ndriver = "redis"\nstop_timeout_secs = -1\n',
        "connections.redis.stop_timeout_secs",
        ("expected a number >= 0, got -1",),
    ),
    Case(
        "string-setting-given-a-number",
        QUEUE,
        '[connections.redis]\ndriver = "redis"\nqueue = 5\n',
        "connections.redis.queue",
        ("expected a string, got 5",),
    ),
    Case(
        "bad-queue-name",
        QUEUE,
        '[connections.redis]\ndriver = "redis"\nqueue = "a:b"\n',
        "connections.redis.queue",
        ("'a:b' is not a valid queue name", "[A-Za-z0-9_.-]{1,128}"),
    ),
    Case(
        "redis-url-wrong-scheme",
        QUEUE,
        '[connections.redis]\ndriver = "redis"\nurl = "http://user:hunter2@h:6379"\n',
        "connections.redis.url",
        ("expected a redis://, rediss://, unix://, redis+cluster:// or redis+sentinel:// URL", "user:***@h"),
        absent=("hunter2",),
    ),
    Case(
        "redis-url-from-env",
        QUEUE,
        '[connections.redis]\ndriver = "redis"\nurl = "${REDIS_URL}"\n',
        "connections.redis.url",
        ("expected a redis://, rediss://, unix://, redis+cluster:// or redis+sentinel:// URL", "(from ${REDIS_URL})"),
        env=(("REDIS_URL", "127.0.0.1:6379"),),
    ),
    # queue.toml: top level
    Case(
        "unknown-top-level-key",
        QUEUE,
        'colour = "blue"\n',
        "colour",
        ("unknown key", "valid keys: connections, default, failed"),
    ),
    Case("default-not-a-string", QUEUE, "default = 5\n", "default", ("expected a string, got 5",)),
    Case(
        "default-names-no-connection",
        QUEUE,
        'default = "nope"\n[connections.sync]\ndriver = "sync"\n[connections.redis]\ndriver = "redis"\n',
        "default",
        ("no connection named 'nope'", "defined: redis, sync"),
    ),
    Case(
        "default-from-env-names-no-connection",
        QUEUE,
        'default = "${QUEUE_CONNECTION:-sync}"\n[connections.sync]\ndriver = "sync"\n',
        "default",
        ("no connection named 'redsi'", "(from ${QUEUE_CONNECTION:-sync})", "defined: sync"),
        env=(("QUEUE_CONNECTION", "redsi"),),
    ),
    Case(
        "default-with-no-connections-at-all",
        QUEUE,
        'default = "sync"\n',
        "default",
        ("no connection named 'sync'", "defined: (none)"),
    ),
    Case("failed-not-a-table", QUEUE, f'failed = "none"\n{SYNC_ONLY}', "failed", ("expected a table",)),
    Case(
        "failed-driver-not-a-string",
        QUEUE,
        f"{SYNC_ONLY}[failed]\ndriver = 1\n",
        "failed.driver",
        ("expected a string, got 1",),
    ),
    Case(
        "failed-driver-unknown",
        QUEUE,
        f'{SYNC_ONLY}[failed]\ndriver = "disk"\n',
        "failed.driver",
        ("unknown failed-job driver 'disk'", "valid: database, none"),
    ),
    # queue.toml: interpolation
    Case("unclosed-reference", QUEUE, 'default = "${QUEUE_CONNECTION"\n', "default", ("unclosed '${'",)),
    Case(
        "unclosed-reference-deep-in-a-block",
        QUEUE,
        '[connections.redis]\ndriver = "redis"\nurl = "redis://${HOST:-h"\n',
        "connections.redis.url",
        ("unclosed '${'",),
    ),
    Case(
        "not-a-variable-name",
        QUEUE,
        'default = "${1X}"\n',
        "default",
        ("'${1X}' is not a variable reference", "expected ${NAME} or ${NAME:-default}"),
    ),
    Case(
        "posix-dash-without-colon-is-not-supported",
        QUEUE,
        'default = "${X-sync}"\n',
        "default",
        ("is not a variable reference", "expected ${NAME} or ${NAME:-default}"),
    ),
    Case(
        "bad-reference-inside-a-default",
        QUEUE,
        'default = "${X:-${-}}"\n',
        "default",
        ("is not a variable reference",),
    ),
    # database.toml
    Case("database-not-toml", DB, "[connections\n", None, ("not valid TOML",)),
    Case("database-connections-not-table", DB, "connections = []\n", "connections", ("expected a table",)),
    Case(
        "database-connection-not-table", DB, "[connections]\nsqlite = 1\n", "connections.sqlite", ("expected a table",)
    ),
    Case(
        "database-url-missing",
        DB,
        "[connections.sqlite]\n",
        "connections.sqlite.url",
        ("expected a string, got None",),
    ),
    Case(
        "database-url-unsupported",
        DB,
        '[connections.main]\nurl = "oracle://scott:tiger@h/db"\n',
        "connections.main.url",
        ("unsupported database URL", "scott:***@h", *DB_URL_CHOICES),
        absent=("tiger",),
    ),
    Case(
        "database-url-sqlite-two-slashes",
        DB,
        '[connections.sqlite]\nurl = "sqlite://database.sqlite"\n',
        "connections.sqlite.url",
        ("must look like sqlite:///relative/path or sqlite:////absolute/path",),
    ),
    Case(
        "database-url-bad-port",
        DB,
        '[connections.pgsql]\nurl = "postgresql://app:s3cret@h:port/app"\n',
        "connections.pgsql.url",
        ("bad port", "app:***@h:port"),
        absent=("s3cret",),
    ),
    Case(
        "database-url-from-env",
        DB,
        '[connections.sqlite]\nurl = "${DATABASE_URL:-sqlite:///db.sqlite}"\n',
        "connections.sqlite.url",
        ("unsupported database URL 'file.db'",),
        env=(("DATABASE_URL", "file.db"),),
    ),
    Case(
        "database-default-unknown",
        DB,
        'default = "oracle"\n[connections.sqlite]\nurl = "sqlite://:memory:"\n',
        "default",
        ("no database connection named 'oracle'", "defined: sqlite"),
    ),
    Case("database-default-not-a-string", DB, "default = []\n", "default", ("expected a string, got []",)),
    Case(
        "database-unclosed-reference",
        DB,
        '[connections.sqlite]\nurl = "${DATABASE_URL"\n',
        "connections.sqlite.url",
        ("unclosed '${'",),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_config_error_names_file_key_expectation_and_choices(case: Case, tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / case.file).write_text(case.text, encoding="utf-8")
    file = str(config_dir / case.file)
    # The message starts with "<file>: <key>:" so that file and key read apart.
    head = f"{file}: {case.key}:" if case.key else f"{file}: "
    with pytest.raises(ConfigError, match=re.escape(head)) as info:
        load_config(config_dir, environ=dict(case.env))
    message = str(info.value)
    assert message.startswith(head), message
    for fragment in case.fragments:
        assert fragment in message, f"{fragment!r} missing from {message!r}"
    for secret in case.absent:
        assert secret not in message, f"{secret!r} leaked into {message!r}"


def test_config_errors_are_oxide_errors() -> None:
    assert issubclass(ConfigError, OxideError)


def test_unreadable_queue_toml_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "queue.toml").mkdir()  # a directory where the file should be
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path / 'queue.toml'}: cannot be read")):
        load_config(tmp_path, environ={})


def test_unreadable_database_toml_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "database.toml").mkdir()
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path / 'database.toml'}: cannot be read")):
        load_config(tmp_path, environ={})


def test_invalid_toml_error_says_where_in_the_file(tmp_path: Path) -> None:
    (tmp_path / "queue.toml").write_text('default = "sync"\n[connections.sync\n')
    with pytest.raises(ConfigError, match=r"not valid TOML: .*line 2"):
        load_config(tmp_path, environ={})


# -- .env -------------------------------------------------------------------------------------


@pytest.mark.parametrize("line", ["JUST_A_WORD", "1ABC=x", "A-B=x", "=value", "export"])
def test_dotenv_line_that_is_not_key_value_names_file_and_line(line: str, tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text(f"# a comment\n{line}\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}:2: expected KEY=value, got {line!r}")):
        load_dotenv(path)


def test_dotenv_error_surfaces_through_load_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path(".env").write_text("OK=1\nnot a pair\n")
    with pytest.raises(ConfigError, match=re.escape(".env:2: expected KEY=value, got 'not a pair'")):
        load_config(tmp_path / "config", environ={})


def test_dotenv_not_utf8_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_bytes(b"A=\xff\xfe\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: cannot be read")):
        load_dotenv(path)


def test_dotenv_that_is_a_directory_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.mkdir()
    with pytest.raises(ConfigError, match=re.escape(f"{path}: cannot be read")):
        load_dotenv(path)


# -- looking up a name that is not configured ----------------------------------------------------


def test_unknown_queue_connection_lists_the_defined_ones(tmp_path: Path) -> None:
    config = load_config(tmp_path, environ={})
    with pytest.raises(ConfigError, match=r"unknown queue connection 'kafka'; defined in queue\.toml: redis, sync$"):
        config.connection("kafka")


def test_unknown_database_connection_lists_the_defined_ones() -> None:
    databases = DatabaseConfig("sqlite", {"sqlite": parse_database_url("sqlite://:memory:")})
    with pytest.raises(ConfigError, match=r"database\.toml: no database connection named 'pgsql'; defined: sqlite$"):
        databases.get("pgsql")
