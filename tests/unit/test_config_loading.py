"""Reading configuration: built-in defaults, ``.env``, ``${VAR}`` interpolation, numbers, database URLs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from oxide.config import (
    Config,
    ConnectionConfig,
    environment,
    interpolate,
    load_config,
    load_dotenv,
    parse_database_url,
)
from oxide.errors import ConfigError


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory (so no stray ``.env`` is read) with an empty ``config/``."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- built-in defaults --------------------------------------------------------------------------


def test_missing_files_mean_the_built_in_defaults(workdir: Path) -> None:
    config = load_config("config", environ={})
    assert config.default == "sync"
    assert dict(config.connections) == {
        "sync": ConnectionConfig(name="sync", driver="sync"),
        "redis": ConnectionConfig(
            name="redis",
            driver="redis",
            url="redis://127.0.0.1:6379",
            queue="default",
            block_timeout_secs=5.0,
            visibility_timeout_secs=90.0,
        ),
    }
    assert config.failed_driver == "database"
    assert config.database.default == "sqlite"
    assert config.database.get().dialect == "sqlite"
    assert config.database.get().path == "database/database.sqlite"
    assert config.database.get("pgsql").url == "postgresql://postgres@127.0.0.1:5432/app"
    assert config.database.get("mysql").url == "mysql://root@127.0.0.1:3306/app"


def test_a_config_dir_that_does_not_exist_means_the_defaults(workdir: Path) -> None:
    config = load_config(workdir / "nowhere", environ={})
    assert config.default == "sync"
    assert set(config.connections) == {"sync", "redis"}


def test_built_in_defaults_honour_their_variables(workdir: Path) -> None:
    env = {
        "QUEUE_CONNECTION": "redis",
        "REDIS_URL": "redis://cache:6380/2",
        "QUEUE_FAILED_DRIVER": "none",
        "DB_CONNECTION": "pgsql",
        "DATABASE_URL": "sqlite:////var/app.sqlite",
    }
    config = load_config("config", environ=env)
    assert config.default == "redis"
    assert config.connection().url == "redis://cache:6380/2"
    assert config.failed_driver == "none"
    assert config.database.get().dialect == "postgresql"
    assert config.database.get("sqlite").path == "/var/app.sqlite"


def test_each_file_falls_back_on_its_own(workdir: Path) -> None:
    write(workdir / "config" / "database.toml", 'default = "mem"\n[connections.mem]\nurl = "sqlite://:memory:"\n')
    config = load_config("config", environ={})
    assert set(config.connections) == {"sync", "redis"}  # queue.toml missing: built in
    assert config.database.get().path == ":memory:"  # database.toml present: read


def test_any_number_of_connections(workdir: Path) -> None:
    write(
        workdir / "config" / "queue.toml",
        'default = "fast"\n'
        '[connections.fast]\ndriver = "redis"\nurl = "redis://a"\nqueue = "hot"\n'
        '[connections.slow]\ndriver = "redis"\nurl = "redis://b"\n'
        '[connections.inline]\ndriver = "sync"\n',
    )
    config = load_config("config", environ={})
    assert set(config.connections) == {"fast", "slow", "inline"}
    assert config.connection() == config.connection("fast")
    assert config.connection().queue == "hot"
    assert config.connection("slow").queue == "default"
    assert config.connection("slow").url == "redis://b"


def test_config_dir_from_oxide_config_dir(workdir: Path) -> None:
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    write(elsewhere / "queue.toml", 'default = "s"\n[connections.s]\ndriver = "sync"\n')
    config = load_config(environ={"OXIDE_CONFIG_DIR": str(elsewhere)})
    assert config.default == "s"
    assert config.config_dir == elsewhere
    assert config.root == elsewhere.parent.resolve()


def test_config_dir_defaults_to_config_in_the_working_directory(workdir: Path) -> None:
    write(workdir / "config" / "queue.toml", 'default = "here"\n[connections.here]\ndriver = "sync"\n')
    config = load_config(environ={})
    assert config.default == "here"
    assert config.root == workdir.resolve()


def test_config_is_frozen(workdir: Path) -> None:
    config = load_config("config", environ={})
    with pytest.raises(AttributeError):
        config.default = "redis"  # type: ignore[misc]
    assert isinstance(config, Config)


# -- numbers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml_value", "env", "expected"),
    [
        ("7", {}, 7.0),
        ("2.5", {}, 2.5),
        ('"5"', {}, 5.0),
        ('" 7.5 "', {}, 7.5),
        ('"1e1"', {}, 10.0),
        ('"${BLOCK}"', {"BLOCK": "3"}, 3.0),
        ('"${BLOCK:-4}"', {}, 4.0),
        ('"${BLOCK:-4}"', {"BLOCK": ""}, 4.0),
        ('"${BLOCK:-4}"', {"BLOCK": "0.25"}, 0.25),
    ],
)
def test_numeric_settings_are_read_as_numbers(
    toml_value: str, env: dict[str, str], expected: float, workdir: Path
) -> None:
    write(
        workdir / "config" / "queue.toml",
        f'default = "redis"\n[connections.redis]\ndriver = "redis"\nblock_timeout_secs = {toml_value}\n',
    )
    value = load_config("config", environ=env).connection().block_timeout_secs
    assert value == expected
    assert type(value) is float


@pytest.mark.parametrize(("toml_value", "expected"), [("3", 3), ('"3"', 3), ('"${N:-2}"', 2)])
def test_whole_number_settings_are_ints(toml_value: str, expected: int, workdir: Path) -> None:
    write(
        workdir / "config" / "queue.toml",
        f'default = "redis"\n[connections.redis]\ndriver = "redis"\nprefetch = {toml_value}\n',
    )
    value = load_config("config", environ={}).connection().prefetch
    assert value == expected
    assert type(value) is int


def test_concurrency_and_the_stop_timeout_are_read_and_zero_means_no_stop_timeout(workdir: Path) -> None:
    write(
        workdir / "config" / "queue.toml",
        'default = "redis"\n[connections.redis]\ndriver = "redis"\nconcurrency = "${SLOTS}"\n'
        'stop_timeout_secs = 25\n[connections.db]\ndriver = "database"\nstop_timeout_secs = 0\n',
    )
    config = load_config("config", environ={"SLOTS": "8"})
    assert (config.connection().concurrency, config.connection().stop_timeout_secs) == (8, 25.0)
    assert (config.connection("db").concurrency, config.connection("db").stop_timeout_secs) == (1, None)


# -- ${VAR} interpolation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${A}", {"A": "x"}, "x"),
        ("${A}", {}, ""),
        ("${A}", {"A": ""}, ""),
        ("${A:-d}", {}, "d"),  # unset: the default
        ("${A:-d}", {"A": ""}, "d"),  # empty: the default too, as in POSIX sh
        ("${A:-d}", {"A": "x"}, "x"),
        ("${A:-}", {}, ""),
        ("${A:-a default with spaces}", {}, "a default with spaces"),
        ("${A:-x:-y}", {}, "x:-y"),  # only the first ':-' separates
        ("${A:-${B}}", {"B": "b"}, "b"),  # a default may itself refer to a variable
        ("${A:-${B:-c}}", {}, "c"),
        ("${A:-${B:-c}}", {"A": "a"}, "a"),
        ("redis://${HOST:-localhost}:${PORT:-6379}/0", {"PORT": "7000"}, "redis://localhost:7000/0"),
        ("no references", {"A": "x"}, "no references"),
        ("$A and $ alone stay", {"A": "x"}, "$A and $ alone stay"),
        ("${A}", {"A": "${B}", "B": "no"}, "${B}"),  # a value is not expanded again
        ("${_under_score1}", {"_under_score1": "ok"}, "ok"),
        ("${A}${A}", {"A": "z"}, "zz"),
        ("}{${A}}", {"A": "z"}, "}{z}"),
    ],
)
def test_interpolation(text: str, env: dict[str, str], expected: str) -> None:
    assert interpolate(text, env, "where") == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${A", "unclosed '\\$\\{' in '\\$\\{A'"),
        ("${A:-${B}", "unclosed"),
        ("${}", "'\\$\\{\\}' is not a variable reference"),
        ("${A B}", "'\\$\\{A B\\}' is not a variable reference"),
        ("${A:x}", "'\\$\\{A:x\\}' is not a variable reference"),
    ],
)
def test_interpolation_errors_say_where(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^somewhere: {message}"):
        interpolate(text, {}, "somewhere")


def test_interpolation_reaches_every_string_value(workdir: Path) -> None:
    write(
        workdir / "config" / "queue.toml",
        'default = "${CONN}"\n'
        '[connections.r]\ndriver = "${DRIVER}"\nurl = "${URL}"\nqueue = "${Q}"\n'
        '[failed]\ndriver = "${FAILED}"\n',
    )
    write(workdir / "config" / "database.toml", 'default = "${DB}"\n[connections.m]\nurl = "${MEM}"\n')
    env = {
        "CONN": "r",
        "DRIVER": "redis",
        "URL": "redis://x:1",
        "Q": "jobs",
        "FAILED": "none",
        "DB": "m",
        "MEM": "sqlite://:memory:",
    }
    config = load_config("config", environ=env)
    assert config.connection() == ConnectionConfig(name="r", driver="redis", url="redis://x:1", queue="jobs")
    assert config.failed_driver == "none"
    assert config.database.get().path == ":memory:"


# -- .env -----------------------------------------------------------------------------------------


def test_dotenv_syntax(tmp_path: Path) -> None:
    path = write(
        tmp_path / ".env",
        "# comment line\n"
        "\n"
        "PLAIN=value\n"
        "SPACED = spaced value \n"
        "export EXPORTED=yes\n"
        "EMPTY=\n"
        "EQUALS=a=b=c\n"
        "HASH_INSIDE=a#b\n"
        "TRAILING=kept # dropped\n"
        'DOUBLE="two words"\n'
        "SINGLE='it is ${LITERAL}'\n"
        'ESCAPES="line1\\nline2 \\"quoted\\""\n'
        "SINGLE_NO_ESCAPES='a\\nb'\n"
        "   INDENTED=ok\n",
    )
    assert load_dotenv(path) == {
        "PLAIN": "value",
        "SPACED": "spaced value",
        "EXPORTED": "yes",
        "EMPTY": "",
        "EQUALS": "a=b=c",
        "HASH_INSIDE": "a#b",
        "TRAILING": "kept",
        "DOUBLE": "two words",
        "SINGLE": "it is ${LITERAL}",
        "ESCAPES": 'line1\nline2 "quoted"',
        "SINGLE_NO_ESCAPES": "a\\nb",
        "INDENTED": "ok",
    }


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('A="a b" # a comment', "a b"),
        ("A='a b' # a comment", "a b"),
        ('A="a # not a comment"', "a # not a comment"),
        ('A="say \\"hi\\"" # comment', 'say "hi"'),
    ],
)
def test_dotenv_quoted_value_with_a_trailing_comment(line: str, expected: str, tmp_path: Path) -> None:
    assert load_dotenv(write(tmp_path / ".env", line + "\n")) == {"A": expected}


def test_dotenv_later_line_wins(tmp_path: Path) -> None:
    assert load_dotenv(write(tmp_path / ".env", "A=1\nA=2\n")) == {"A": "2"}


def test_missing_dotenv_is_empty(tmp_path: Path) -> None:
    assert load_dotenv(tmp_path / ".env") == {}


def test_environment_variables_win_over_dotenv(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(workdir / ".env", "FROM_FILE=file\nBOTH=file\n")
    monkeypatch.setenv("BOTH", "process")
    monkeypatch.delenv("FROM_FILE", raising=False)
    env = environment()
    assert env["FROM_FILE"] == "file"
    assert env["BOTH"] == "process"
    assert env["PATH"] == os.environ["PATH"]


def test_dotenv_feeds_config_and_the_environment_wins(workdir: Path) -> None:
    write(workdir / ".env", "QUEUE_CONNECTION=redis\nREDIS_URL=redis://from-dotenv:1\n")
    from_dotenv = load_config("config", environ={})
    assert from_dotenv.default == "redis"
    assert from_dotenv.connection().url == "redis://from-dotenv:1"
    overridden = load_config("config", environ={"REDIS_URL": "redis://from-env:2"})
    assert overridden.default == "redis"  # still from .env
    assert overridden.connection().url == "redis://from-env:2"


def test_an_empty_environment_variable_still_wins_over_dotenv(workdir: Path) -> None:
    # Set-but-empty is "set": it hides the .env value, and ${VAR:-default} then falls back.
    write(workdir / ".env", "QUEUE_CONNECTION=redis\n")
    assert load_config("config", environ={"QUEUE_CONNECTION": ""}).default == "sync"


def test_dotenv_can_name_the_config_dir(workdir: Path) -> None:
    other = workdir / "other"
    other.mkdir()
    write(other / "queue.toml", 'default = "o"\n[connections.o]\ndriver = "sync"\n')
    write(workdir / ".env", f"OXIDE_CONFIG_DIR={other}\n")
    assert load_config(environ={}).default == "o"


# -- database URLs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "dialect", "fields"),
    [
        ("sqlite:///database/database.sqlite", "sqlite", {"path": "database/database.sqlite"}),
        ("sqlite:///app.db", "sqlite", {"path": "app.db"}),
        ("sqlite:////var/lib/app.db", "sqlite", {"path": "/var/lib/app.db"}),
        ("sqlite://:memory:", "sqlite", {"path": ":memory:"}),
        ("SQLite:///x.db", "sqlite", {"path": "x.db"}),
        (
            "postgresql://postgres@127.0.0.1:5432/app",
            "postgresql",
            {"host": "127.0.0.1", "port": 5432, "user": "postgres", "password": None, "database": "app"},
        ),
        (
            "postgres://u:p%40ss%3Aw@db.example/shop",
            "postgresql",
            {"host": "db.example", "port": None, "user": "u", "password": "p@ss:w", "database": "shop"},
        ),
        ("postgresql://", "postgresql", {"host": None, "port": None, "user": None, "database": None}),
        (
            "mysql://root@127.0.0.1:3306/app",
            "mysql",
            {"host": "127.0.0.1", "port": 3306, "user": "root", "database": "app"},
        ),
        (
            "mariadb://app:secret@[::1]:3307/app",
            "mysql",
            {"host": "::1", "port": 3307, "user": "app", "password": "secret", "database": "app"},
        ),
    ],
)
def test_database_url_forms(url: str, dialect: str, fields: dict[str, object]) -> None:
    parsed = parse_database_url(url)
    assert parsed.dialect == dialect
    assert parsed.url == url
    for name, value in fields.items():
        assert getattr(parsed, name) == value, name


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "unsupported database URL ''"),
        ("sqlite", "unsupported database URL 'sqlite'"),
        ("sqlite:/x.db", "unsupported database URL"),
        ("http://example.com/db", "unsupported database URL"),
        ("oracle://scott@h/db", "unsupported database URL"),
        ("sqlite://", "must look like sqlite:///relative/path or sqlite:////absolute/path"),
        ("sqlite:///", "must look like"),
        ("sqlite://relative.db", "must look like"),
        ("postgresql://h:port/db", "bad port"),
        ("mysql://h:99999/db", "bad port"),
    ],
)
def test_bad_database_urls(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^database.toml: .*{message}"):
        parse_database_url(url)


def test_unsupported_database_url_lists_the_valid_forms() -> None:
    with pytest.raises(ConfigError, match="expected one of") as info:
        parse_database_url("redis://h/0", "config/database.toml: connections.x.url")
    message = str(info.value)
    assert message.startswith("config/database.toml: connections.x.url: ")
    for form in ("sqlite:///relative/path", "sqlite:////absolute/path", "sqlite://:memory:", "postgresql://"):
        assert form in message
    assert "mysql://" in message
    assert "mariadb://" in message


@pytest.mark.parametrize(
    ("url", "password", "shown"),
    [
        ("postgresql://u:hunter2@h/db", "hunter2", "postgresql://u:***@h/db"),
        ("postgresql://u:p%40ss@h/db", "p%40ss", "postgresql://u:***@h/db"),
        ("mysql://root@h/db", None, "mysql://root@h/db"),
    ],
)
def test_redacted_url_hides_the_password(url: str, password: str | None, shown: str) -> None:
    parsed = parse_database_url(url)
    assert parsed.redacted() == shown
    if password is not None:
        assert password not in parsed.redacted()
        assert parsed.password is not None
        assert parsed.password not in repr(parsed)
