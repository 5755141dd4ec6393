"""The failed-job commands in-process, with no server: SQLite, and no redis-py where none is needed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from oxide.cli import main


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "config").mkdir()
    # The built-in defaults: a sync default connection, a redis one defined but unused, SQLite.
    monkeypatch.chdir(tmp_path)
    for name in ("QUEUE_CONNECTION", "DB_CONNECTION", "DATABASE_URL", "REDIS_URL", "QUEUE_FAILED_DRIVER", "OXIDE_APP"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_listing_needs_no_redis_py_when_the_app_does_not_use_redis(
    app_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # as if oxide-queue[redis] were not installed
    assert main(["vendor:publish", "queue"]) == 0
    assert main(["migrate"]) == 0
    capsys.readouterr()
    assert main(["queue:failed"]) == 0
    assert capsys.readouterr().out == "No failed jobs.\n"


def test_driver_none_says_nothing_is_stored(
    app_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QUEUE_FAILED_DRIVER", "none")
    assert main(["queue:failed"]) == 0
    assert main(["queue:flush"]) == 0
    assert main(["queue:retry", "--all"]) == 0
    out = capsys.readouterr().out
    assert out.count('failed jobs are not stored ([failed] driver = "none" in queue.toml)') == 3
    assert main(["queue:forget", "1"]) == 1


def test_migrate_before_publishing_says_what_to_publish(app_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate"]) == 0
    out = capsys.readouterr().out
    assert (
        out
        == f"No migrations in {app_dir / 'database' / 'migrations'}; publish the queue's with: oxide vendor:publish queue\n"
    )
    assert not (app_dir / "database" / "database.sqlite").exists()


@pytest.mark.parametrize(
    ("hours", "message"),
    [
        ("abc", "expected a whole number of hours, got 'abc'"),
        ("1.5", "got '1.5'"),
        ("-1", "expected 0 or more hours, got -1"),
    ],
)
def test_prune_refuses_hours_that_are_not_a_count(
    app_dir: Path, capsys: pytest.CaptureFixture[str], hours: str, message: str
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["queue:prune-failed", "--hours", hours])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_prune_with_driver_none_says_nothing_is_stored(
    app_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QUEUE_FAILED_DRIVER", "none")
    assert main(["queue:prune-failed", "--hours", "0"]) == 0
    assert (
        capsys.readouterr().out
        == 'No failed jobs to prune: failed jobs are not stored ([failed] driver = "none" in queue.toml).\n'
    )
