"""Config details the broader suites left open: exact error texts, nested defaults, lists, unix URLs."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from oxide.config import (
    ConfigError,
    DatabaseConfig,
    interpolate,
    load_config,
    load_dotenv,
    parse_database_url,
    redact_url,
)


def write_queue(tmp_path: Path, text: str) -> Path:
    (tmp_path / "queue.toml").write_text(text)
    return tmp_path


def test_an_unknown_database_connection_lists_the_defined_ones() -> None:
    config = DatabaseConfig(
        "main", {"main": parse_database_url("sqlite://:memory:"), "aux": parse_database_url("sqlite://:memory:")}
    )
    with pytest.raises(ConfigError) as info:
        config.get("other")
    assert str(info.value) == "database.toml: no database connection named 'other'; defined: aux, main"


def test_an_empty_reference_inside_a_default_is_refused_as_such() -> None:
    with pytest.raises(ConfigError, match=re.escape("q: '${}' is not a variable reference")):
        interpolate("${A:-${}}", {}, "q")


def test_nested_defaults_expand_innermost_last() -> None:
    assert interpolate("${A:-${B:-x}}-${C}", {"C": "c"}, "q") == "x-c"
    assert interpolate("${A:-${B:-x}}", {"B": "b"}, "q") == "b"


def test_list_values_are_interpolated_and_errors_name_the_index(tmp_path: Path) -> None:
    from oxide.config import _expand

    assert _expand(["${A}", ["${B:-b}"]], {"A": "a"}, "q") == ["a", ["b"]]
    with pytest.raises(ConfigError, match=re.escape("q.list[1]: unclosed '${'")):
        _expand({"list": ["ok", "${A"]}, {}, "q")


def test_a_bad_literal_number_names_no_variable(tmp_path: Path) -> None:
    write_queue(tmp_path, '[connections.redis]\ndriver = "redis"\nblock_timeout_secs = "abc"\n')
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, environ={})
    assert str(info.value).endswith("connections.redis.block_timeout_secs: expected a number, got 'abc'")


def test_a_bad_interpolated_whole_number_names_its_variable(tmp_path: Path) -> None:
    write_queue(tmp_path, '[connections.redis]\ndriver = "redis"\nprefetch = "${PREFETCH}"\n')
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, environ={"PREFETCH": "many"})
    assert str(info.value).endswith(
        "connections.redis.prefetch: expected a whole number, got 'many' (from ${PREFETCH})"
    )


def test_a_unix_socket_url_is_a_redis_url(tmp_path: Path) -> None:
    write_queue(
        tmp_path,
        'default = "redis"\n[connections.redis]\ndriver = "redis"\nurl = "unix:///run/redis/redis.sock?db=2"\n',
    )
    assert load_config(tmp_path, environ={}).connections["redis"].url == "unix:///run/redis/redis.sock?db=2"


def test_a_password_written_twice_in_a_url_is_hidden_twice(tmp_path: Path) -> None:
    write_queue(
        tmp_path,
        '[connections.redis]\ndriver = "redis"\nurl = "http://app:hunter2@h1/0?next=http://app:hunter2@h2/0"\n',
    )
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, environ={})
    assert str(info.value) == (
        f"{tmp_path / 'queue.toml'}: connections.redis.url: expected a redis://, rediss://, unix://, redis+cluster:// or redis+sentinel:// URL, "
        "got 'http://app:***@h1/0?next=http://app:***@h2/0'"
    )


def test_the_password_query_argument_is_hidden_whatever_its_case() -> None:
    assert redact_url("redis://h/0?PASSWORD=s3cret&db=1") == "redis://h/0?PASSWORD=***&db=1"


def test_an_unsupported_database_url_lists_the_supported_forms() -> None:
    with pytest.raises(ConfigError) as info:
        parse_database_url("oracle://h/db")
    assert str(info.value) == (
        "database.toml: unsupported database URL 'oracle://h/db'; expected one of sqlite:///relative/path, "
        "sqlite:////absolute/path, sqlite://:memory:, postgresql://…, mysql://…, mariadb://…"
    )


def test_the_scheme_ends_at_the_first_separator() -> None:
    assert parse_database_url("sqlite:///data/a://b.sqlite").path == "data/a://b.sqlite"


def test_database_names_keep_their_leading_characters() -> None:
    assert parse_database_url("postgresql://h/XXdb").database == "XXdb"


def test_dotenv_takes_lowercase_keys_and_any_spacing_after_export(tmp_path: Path) -> None:
    from oxide.config import load_dotenv

    (tmp_path / ".env").write_text("export   A=1\nlower_key=2\n")
    assert load_dotenv(tmp_path / ".env") == {"A": "1", "lower_key": "2"}


@pytest.mark.parametrize(
    ("database_toml", "defined"),
    [
        (
            'default = "main"\n[connections.other]\nurl = "sqlite:///x.sqlite"\n[connections.aux]\nurl = "sqlite:///y.sqlite"\n',
            "aux, other",
        ),
        ('default = "main"\n', "(none)"),
    ],
)
def test_a_database_default_that_is_not_defined_lists_what_is(tmp_path: Path, database_toml: str, defined: str) -> None:
    (tmp_path / "database.toml").write_text(database_toml)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, environ={})
    assert str(info.value).endswith(f"database.toml: default: no database connection named 'main'; defined: {defined}")


def test_with_failed_jobs_kept_elsewhere_no_database_connection_is_needed(tmp_path: Path) -> None:
    write_queue(tmp_path, 'default = "s"\n[connections.s]\ndriver = "sync"\n[failed]\ndriver = "none"\n')
    (tmp_path / "database.toml").write_text('default = "main"\n')
    assert load_config(tmp_path, environ={}).failed_driver == "none"


@pytest.mark.parametrize("failed_table", ["", "[failed]\n"])
def test_failed_jobs_go_to_the_database_unless_queue_toml_says_otherwise(tmp_path: Path, failed_table: str) -> None:
    write_queue(tmp_path, f'default = "s"\n[connections.s]\ndriver = "sync"\n{failed_table}')
    assert load_config(tmp_path, environ={}).failed_driver == "database"


def test_the_database_default_is_the_connection_named_sqlite(tmp_path: Path) -> None:
    (tmp_path / "database.toml").write_text('[connections.sqlite]\nurl = "sqlite:///db.sqlite"\n')
    assert load_config(tmp_path, environ={}).database.default == "sqlite"


def test_a_dotenv_file_is_read_as_utf8_whatever_the_locale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / ".env"
    path.write_text("GREETING=h\u00e9llo w\u00f6rld\n", encoding="utf-8")
    # A locale whose encoding is Latin-1: a text file opened without an encoding is decoded with it.
    monkeypatch.setattr(io, "text_encoding", lambda encoding, stacklevel=2: encoding or "latin-1")
    assert load_dotenv(path) == {"GREETING": "h\u00e9llo w\u00f6rld"}
