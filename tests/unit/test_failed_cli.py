"""The failed-job commands in-process: exact output, exit status and what each leaves in the table and the queues.

SQLite holds ``failed_jobs``; the redis connection is a fakeredis client, so the
commands run without servers and see only what the test put there.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import oxide.drivers.redis
from oxide.cli import main
from oxide.config import load_config
from oxide.drivers.redis import queue_key
from oxide.errors import ConfigError
from oxide.failed import FailedJob, store_for
from oxide.failed.parking import SPOOL_PATH, RedisParking, SpoolParking
from oxide.failed.store import DatabaseFailedJobProvider
from oxide.wire import Job

QUEUE_TOML = """
default = "main"
[connections.main]
driver = "redis"
url = "redis://127.0.0.1:6379/13"
[connections.inline]
driver = "sync"
[failed]
driver = "database"
"""
REAL_CONNECT = oxide.drivers.redis.connect  # the fixture replaces it with fakeredis
WHEN = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)


@pytest.fixture
def project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_redis: Any, capsys: pytest.CaptureFixture[str]
) -> Path:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "queue.toml").write_text(QUEUE_TOML)
    monkeypatch.chdir(tmp_path)
    for name in ("QUEUE_CONNECTION", "DB_CONNECTION", "DATABASE_URL", "REDIS_URL", "QUEUE_FAILED_DRIVER", "OXIDE_APP"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(oxide.drivers.redis, "connect", lambda url, **options: fake_redis)
    assert main(["vendor:publish", "queue"]) == 0
    assert main(["migrate"]) == 0
    capsys.readouterr()
    return tmp_path


def store(root: Path) -> DatabaseFailedJobProvider:
    provider = store_for(load_config(root / "config", environ={}))
    assert isinstance(provider, DatabaseFailedJobProvider)
    return provider


def failure(uuid: str, queue: str = "emails", *, event: str = "auth.registered", **changes: Any) -> FailedJob:
    fields: dict[str, Any] = {
        "uuid": uuid,
        "connection": "main",
        "queue": queue,
        "event_name": event,
        "listener_type": "app.SendWelcome",
        "payload": '{"to":"zoë"}',
        "exception": "RuntimeError: smtp down",
        "failed_at": WHEN,
    }
    return FailedJob(**(fields | changes))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_the_listing_is_a_table_with_columns_as_wide_as_their_widest_cell(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store(project).log(failure("u-1"))
    store(project).log(failure("a-much-longer-uuid", "q", event="", failed_at=WHEN + timedelta(days=1)))
    assert run(capsys, "queue:failed") == (
        0,
        "ID  UUID                CONNECTION  QUEUE   EVENT                  FAILED AT\n"
        "1   u-1                 main        emails  auth.registered        2026-03-04 05:06:07 UTC\n"
        "2   a-much-longer-uuid  main        q       (undecodable message)  2026-03-05 05:06:07 UTC\n",
        "",
    )


def test_the_json_listing_has_every_column_and_keeps_text_as_it_is(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store(project).log(failure("u-1"))
    status, out, err = run(capsys, "queue:failed", "--json")
    row = {
        "id": 1,
        "uuid": "u-1",
        "connection": "main",
        "queue": "emails",
        "event_name": "auth.registered",
        "listener_type": "app.SendWelcome",
        "payload": '{"to":"zoë"}',
        "exception": "RuntimeError: smtp down",
        "failed_at": "2026-03-04T05:06:07.891011+00:00",
    }
    assert (status, err) == (0, "")
    assert out == json.dumps([row], ensure_ascii=False, indent=2) + "\n"


def test_listing_first_moves_in_what_workers_parked_in_the_spool_and_in_redis(
    project: Path, capsys: pytest.CaptureFixture[str], fake_redis: Any
) -> None:
    SpoolParking(project / SPOOL_PATH).park(failure("from-spool"))
    RedisParking(fake_redis).park(failure("from-redis"))
    status, out, err = run(capsys, "queue:failed", "--json")
    assert status == 0
    assert sorted(row["uuid"] for row in json.loads(out)) == ["from-redis", "from-spool"]
    assert err == "Moved 2 parked failed job(s) into failed_jobs.\n"
    assert run(capsys, "queue:failed", "--json")[2] == ""  # nothing left to move, nothing said


def test_retry_by_id_pushes_in_the_order_given_and_deletes_the_rows(
    project: Path, capsys: pytest.CaptureFixture[str], fake_redis: Any
) -> None:
    for uuid in ("u-1", "u-2", "u-3"):
        store(project).log(failure(uuid))
    assert run(capsys, "queue:retry", "3", "1", "3") == (
        0,
        "Retried failed job 3 (uuid u-3) onto main/emails.\n"
        "Retried failed job 1 (uuid u-1) onto main/emails.\n"
        "Retried 2 failed job(s).\n",
        "",
    )
    pushed = [Job.from_json(body) for body in fake_redis.lrange(queue_key("emails"), 0, -1)]
    assert [(job.uuid, job.event_name, job.payload) for job in reversed(pushed)] == [
        ("u-3", "auth.registered", {"to": "zoë"}),
        ("u-1", "auth.registered", {"to": "zoë"}),
    ]
    assert [row.uuid for row in store(project).all()] == ["u-2"]


def test_retry_names_the_unknown_ids_as_typed_and_exits_1_after_retrying_the_known_ones(
    project: Path, capsys: pytest.CaptureFixture[str], fake_redis: Any
) -> None:
    store(project).log(failure("u-1"))
    status, out, err = run(capsys, "queue:retry", "99", "1", "98", "99")
    assert status == 1
    assert out == "Retried failed job 1 (uuid u-1) onto main/emails.\nRetried 1 failed job(s).\n"
    assert err == "oxide: error: no failed job with id 99, 98; see: oxide queue:failed\n"
    assert fake_redis.llen(queue_key("emails")) == 1


@pytest.mark.parametrize("argv", [["--all"], ["all"], ["all", "--all"]])
def test_retry_all_takes_every_row(
    project: Path, capsys: pytest.CaptureFixture[str], fake_redis: Any, argv: list[str]
) -> None:
    store(project).log(failure("u-1", "emails"))
    store(project).log(failure("u-2", "reports"))
    status, out, _ = run(capsys, "queue:retry", *argv)
    assert (status, out.splitlines()[-1]) == (0, "Retried 2 failed job(s).")
    assert (fake_redis.llen(queue_key("emails")), fake_redis.llen(queue_key("reports"))) == (1, 1)
    assert store(project).all() == []


def test_retry_by_queue_takes_only_that_queues_rows(
    project: Path, capsys: pytest.CaptureFixture[str], fake_redis: Any
) -> None:
    store(project).log(failure("u-1", "emails"))
    store(project).log(failure("u-2", "reports"))
    store(project).log(failure("u-3", "emails"))
    status, out, _ = run(capsys, "queue:retry", "--queue", "emails")
    assert (status, out.splitlines()[-1]) == (0, "Retried 2 failed job(s).")
    assert [row.uuid for row in store(project).all()] == ["u-2"]
    assert fake_redis.llen(queue_key("reports")) == 0


@pytest.mark.parametrize("argv", [["--all"], ["--queue", "emails"]])
def test_retry_with_nothing_to_retry_says_so(
    project: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    store(project).log(failure("u-1", "reports"))  # another queue's
    if argv == ["--all"]:
        store(project).flush()
    assert run(capsys, "queue:retry", *argv) == (0, "No failed jobs to retry.\n", "")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "queue:retry: give failed-job ids, or --all, or --queue NAME (exactly one of them)"),
        (["1", "--all"], "queue:retry: give failed-job ids, or --all, or --queue NAME (exactly one of them)"),
        (
            ["--all", "--queue", "q"],
            "queue:retry: give failed-job ids, or --all, or --queue NAME (exactly one of them)",
        ),
        (["1", "x"], "queue:retry: 'x' is not a failed-job id (ids are whole numbers)"),
    ],
)
def test_retry_usage_errors_exit_2_before_touching_anything(
    project: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    store(project).log(failure("u-1"))
    assert run(capsys, "queue:retry", *argv) == (2, "", f"oxide: error: {message}\n")
    assert len(store(project).all()) == 1


def test_a_row_that_cannot_be_pushed_is_kept_and_the_retry_exits_1(
    project: Path, capsys: pytest.CaptureFixture[str], fake_redis: Any
) -> None:
    store(project).log(failure("u-1", connection="gone"))
    store(project).log(failure("u-2"))
    status, out, err = run(capsys, "queue:retry", "--all")
    assert status == 1
    assert out == "Retried failed job 2 (uuid u-2) onto main/emails.\nRetried 1 failed job(s).\n"
    assert err == (
        "oxide: error: failed job 1 not retried, row kept: could not push onto gone/emails: "
        "unknown queue connection 'gone'; defined in queue.toml: inline, main\n"
    )
    assert [row.uuid for row in store(project).all()] == ["u-1"]


def test_forget_deletes_one_row_and_names_a_missing_one(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store(project).log(failure("u-1"))
    store(project).log(failure("u-2"))
    assert run(capsys, "queue:forget", "1") == (0, "Deleted failed job 1.\n", "")
    assert run(capsys, "queue:forget", "1") == (
        1,
        "",
        "oxide: error: no failed job with id 1; see: oxide queue:failed\n",
    )
    assert [row.uuid for row in store(project).all()] == ["u-2"]


def test_flush_says_how_many_it_deleted(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store(project).log(failure("u-1"))
    store(project).log(failure("u-2"))
    assert run(capsys, "queue:flush") == (0, "Deleted 2 failed job(s).\n", "")
    assert run(capsys, "queue:flush") == (0, "No failed jobs to delete.\n", "")


@pytest.mark.parametrize(("argv", "hours", "left"), [([], 24, ["recent"]), (["--hours", "0"], 0, [])])
def test_prune_deletes_what_failed_more_than_the_hours_ago(
    project: Path, capsys: pytest.CaptureFixture[str], argv: list[str], hours: int, left: list[str]
) -> None:
    now = datetime.now(UTC)
    store(project).log(failure("old", failed_at=now - timedelta(hours=25)))
    store(project).log(failure("recent", failed_at=now - timedelta(hours=23)))
    deleted = 2 - len(left)
    assert run(capsys, "queue:prune-failed", *argv) == (
        0,
        f"Deleted {deleted} failed job(s) that failed more than {hours} hour(s) ago.\n",
        "",
    )
    assert [row.uuid for row in store(project).all()] == left


def test_parked_records_are_fetched_from_every_redis_connection_that_can_be_reached(
    project: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    fake_redis: Any,
) -> None:
    (project / "config" / "queue.toml").write_text(
        'default = "main"\n'
        '[connections.bad]\ndriver = "redis"\nurl = "redis://bad-url"\n'
        '[connections.down]\ndriver = "redis"\nurl = "redis://127.0.0.1:1/13"\n'
        '[connections.inline]\ndriver = "sync"\n'
        '[connections.main]\ndriver = "redis"\nurl = "redis://127.0.0.1:6379/13"\n'
    )
    opened: list[str] = []

    def connect(url: str, **options: Any) -> Any:
        opened.append(url)
        if url == "redis://bad-url":
            raise ConfigError("bad redis URL")  # as for a URL redis-py refuses
        if url == "redis://127.0.0.1:1/13":
            return REAL_CONNECT(url, **options)  # nothing listens there
        assert url == "redis://127.0.0.1:6379/13", f"connected to {url}, which no redis connection names"
        return fake_redis

    monkeypatch.setattr(oxide.drivers.redis, "connect", connect)
    RedisParking(fake_redis).park(failure("from-main"))
    with caplog.at_level(logging.WARNING, logger="oxide.failed"):
        status, out, err = run(capsys, "queue:failed", "--json")
    assert (status, err) == (0, "Moved 1 parked failed job(s) into failed_jobs.\n")
    assert [row["uuid"] for row in json.loads(out)] == ["from-main"]
    assert err == "Moved 1 parked failed job(s) into failed_jobs.\n"
    assert opened == ["redis://bad-url", "redis://127.0.0.1:1/13", "redis://127.0.0.1:6379/13"]
    assert caplog.messages[0].startswith(
        "parked failed jobs cannot be moved into failed_jobs yet: "
        "redis connection 'down' (redis://127.0.0.1:1/13) lists oxide:queue:<queue>:failed: "
    )


def test_retry_first_moves_in_what_was_parked_so_it_is_retried_too(
    project: Path, capsys: pytest.CaptureFixture[str], fake_redis: Any
) -> None:
    SpoolParking(project / SPOOL_PATH).park(failure("parked"))
    status, out, err = run(capsys, "queue:retry", "--all")
    assert (status, err) == (0, "Moved 1 parked failed job(s) into failed_jobs.\n")
    assert out == "Retried failed job 1 (uuid parked) onto main/emails.\nRetried 1 failed job(s).\n"
    assert fake_redis.llen(queue_key("emails")) == 1


def test_retry_by_queue_with_driver_none_says_nothing_is_stored(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "config" / "queue.toml").write_text(QUEUE_TOML.replace('driver = "database"', 'driver = "none"'))
    assert run(capsys, "queue:retry", "--queue", "emails") == (
        0,
        'No failed jobs to retry: failed jobs are not stored ([failed] driver = "none" in queue.toml).\n',
        "",
    )


@pytest.fixture
def far_time_zone() -> Iterator[None]:
    """The machine's local time five hours behind UTC, for this test only."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Etc/GMT+5"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def test_prune_measures_the_hours_in_utc_whatever_the_machines_time_zone(
    project: Path, capsys: pytest.CaptureFixture[str], far_time_zone: None
) -> None:
    now = datetime.now(UTC)
    store(project).log(failure("old", failed_at=now - timedelta(hours=25)))
    store(project).log(failure("recent", failed_at=now - timedelta(hours=23)))
    assert run(capsys, "queue:prune-failed")[1] == "Deleted 1 failed job(s) that failed more than 24 hour(s) ago.\n"
    assert [row.uuid for row in store(project).all()] == ["recent"]
