"""A password in REDIS_URL or in a database URL never reaches an error message or the log.

Every case makes a real connection attempt to 127.0.0.1 port 1, where nothing listens (the
attempt is refused at once, so no server is needed), through the paths a deployment takes:
the URL comes from the environment through the config files, the error surfaces where a user
would read it (the exception, the CLI's stderr with tracebacks on, the log at DEBUG level,
including the logs of redis-py, psycopg and PyMySQL).

Passwords come in the forms managed services hand out: plain, with a username (Redis 6 ACLs),
with characters that must be percent-encoded in a URL, and as redis-py's ``?password=``
query argument. Neither the decoded nor the encoded form may appear.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from oxide import App, OxideError
from oxide.cli import main
from oxide.config import load_config, parse_database_url
from oxide.drivers.redis import redact
from oxide.wire import Job

PLAIN = "Plain-s3cret-0xide"
SPECIAL = "p@ss/w:rd?#%-0xide"  # needs percent-encoding in a URL
SECRETS = (PLAIN, SPECIAL)
ENCODED = quote(SPECIAL, safe="")

REDIS_URLS = {
    "password only": f"redis://:{PLAIN}@127.0.0.1:1/0",
    "username and password": f"redis://default:{PLAIN}@127.0.0.1:1/0",
    "tls": f"rediss://default:{PLAIN}@127.0.0.1:1/0",
    "percent-encoded": f"rediss://default:{ENCODED}@127.0.0.1:1/0",
    "query argument": f"redis://127.0.0.1:1/0?password={PLAIN}",
    "encoded query argument": f"redis://127.0.0.1:1/0?db=0&password={ENCODED}",
}
DATABASE_URLS = {
    "postgresql": f"postgresql://app:{PLAIN}@127.0.0.1:1/app",
    "postgresql percent-encoded": f"postgresql://app:{ENCODED}@127.0.0.1:1/app",
    "mysql": f"mysql://app:{PLAIN}@127.0.0.1:1/app",
    "mariadb percent-encoded": f"mariadb://app:{ENCODED}@127.0.0.1:1/app",
}


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            for form in {secret, quote(secret, safe=""), quote(secret)}:
                assert form not in text, f"a password ({form!r}) leaked into:\n{text}"


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An application directory whose config reads REDIS_URL and DATABASE_URL, as a deployment's does."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "queue.toml").write_text(
        'default = "redis"\n[connections.redis]\ndriver = "redis"\nurl = "${REDIS_URL}"\nblock_timeout_secs = 1\n',
        encoding="utf-8",
    )
    (config / "database.toml").write_text(
        'default = "main"\n[connections.main]\nurl = "${DATABASE_URL:-sqlite:///database/database.sqlite}"\n',
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    for name in ("QUEUE_CONNECTION", "DB_CONNECTION", "DATABASE_URL", "REDIS_URL", "QUEUE_FAILED_DRIVER", "OXIDE_APP"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.mark.parametrize("url", REDIS_URLS.values(), ids=REDIS_URLS.keys())
def test_redact_hides_every_form_of_a_redis_password(url: str) -> None:
    shown = redact(url)
    assert_no_secret(shown)
    assert "***" in shown
    assert "127.0.0.1:1" in shown  # what is left still says where the server is


@pytest.mark.parametrize("url", DATABASE_URLS.values(), ids=DATABASE_URLS.keys())
def test_a_database_url_shows_no_password(url: str) -> None:
    parsed = parse_database_url(url)
    assert parsed.password in SECRETS  # the driver gets the real, decoded password
    assert_no_secret(parsed.redacted(), repr(parsed))
    assert "***" in parsed.redacted()


@pytest.mark.parametrize("url", REDIS_URLS.values(), ids=REDIS_URLS.keys())
def test_an_unreachable_redis_from_redis_url_says_where_but_not_the_password(
    url: str, app_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("redis")
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("REDIS_URL", url)
    app = App(config_dir=app_dir / "config")
    with pytest.raises(OxideError) as failure:
        app.push(None, "default", Job(event_name="ops.ping", listener_type="tests.Ping", payload={}))
    message = str(failure.value)
    assert "127.0.0.1:1" in message
    assert "refused" in message.lower()
    assert_no_secret(message, repr(failure.value), repr(app.config), caplog.text)


@pytest.mark.parametrize("url", REDIS_URLS.values(), ids=REDIS_URLS.keys())
def test_the_cli_with_tracebacks_on_prints_no_redis_password(
    url: str,
    app_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    pytest.importorskip("redis")
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("REDIS_URL", url)
    assert main(["vendor:publish", "queue"]) == 0
    assert main(["migrate"]) == 0
    capsys.readouterr()
    # Listing first moves in failures parked in Redis: the unreachable server is reported, not fatal.
    status = main(["-vv", "queue:failed"])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "127.0.0.1:1" in err + caplog.text  # the problem is reported...
    assert_no_secret(out, err, caplog.text)  # ...without the password


@pytest.mark.parametrize("url", DATABASE_URLS.values(), ids=DATABASE_URLS.keys())
def test_an_unreachable_database_from_database_url_says_where_but_not_the_password(
    url: str,
    app_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    pytest.importorskip("psycopg" if url.startswith("postgresql") else "pymysql")
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    assert main(["vendor:publish", "queue"]) == 0
    capsys.readouterr()
    status = main(["-vv", "migrate"])
    out, err = capsys.readouterr()
    assert status == 1, err
    assert "oxide: error: " in err
    assert "127.0.0.1" in err
    assert "Traceback" in err  # -v shows the traceback, and it too must be clean
    assert_no_secret(out, err, caplog.text, repr(load_config(app_dir / "config")))


def test_the_checks_above_would_see_a_leak(capsys: pytest.CaptureFixture[str]) -> None:
    """The assertion helper itself: a message holding either form of a password fails it."""
    for leaked in (f"redis://:{PLAIN}@host", f"mysql://u:{ENCODED}@host", f"password={SPECIAL}"):
        with pytest.raises(AssertionError):
            assert_no_secret(leaked)
    print(redact(f"redis://:{PLAIN}@host"), file=sys.stderr)
    assert_no_secret(capsys.readouterr().err)


def test_a_url_that_cannot_be_parsed_still_has_its_query_password_hidden() -> None:
    from oxide.config import redact_url

    assert redact_url("redis://[::1:6379/0?password=secret") == "redis://[::1:6379/0?password=***"


def test_a_url_that_cannot_be_parsed_still_has_its_userinfo_password_hidden() -> None:
    from oxide.config import redact_url

    assert "pw" not in redact_url("redis://user:pw@[::1:6379/0")


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("redis://user:pw@[::1:6379/0", "redis://user:***@[::1:6379/0"),
        ("redis://:pw@[::1:6379/0?password=pw", "redis://:***@[::1:6379/0?password=***"),
        # Split as urlsplit splits: the last "@" ends the user-info, the first ":" starts the password.
        ("redis://u:p@w@[::1/0", "redis://u:***@[::1/0"),
        ("redis://u:p:w@[::1/0", "redis://u:***@[::1/0"),
        ("redis://u:pw@[::1/0?next=http://x", "redis://u:***@[::1/0?next=http://x"),
        # No password to hide: a user name alone, no user-info, an "@" past the authority.
        ("redis://user@[::1:6379/0", "redis://user@[::1:6379/0"),
        ("redis://[::1:6379/0", "redis://[::1:6379/0"),
        ("redis://[::1/0?next=a:b@c", "redis://[::1/0?next=a:b@c"),
    ],
)
def test_an_unparsable_url_loses_exactly_its_userinfo_password(url: str, redacted: str) -> None:
    from oxide.config import redact_url

    assert redact_url(url) == redacted
