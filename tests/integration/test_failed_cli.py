"""End to end through the real command line (``python -m oxide``), with a small application on disk.

A job is dispatched onto the real Redis, taken off again and recorded as failed
the way a worker does (through ``provider_for``), then listed, retried, forgotten
and flushed with the CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from oxide.config import load_config
from oxide.drivers.redis import queue_key
from oxide.failed import FailedJob, provider_for, store_for
from oxide.failed.store import DatabaseFailedJobProvider
from oxide.wire import Job, encode_value
from tests.conftest import ScratchDatabase

MIGRATION = "0001_01_01_000001_create_failed_jobs_table"
JOBS_MIGRATION = "0001_01_01_000002_create_jobs_table"  # the database queue driver's table, same tag
OPS_MIGRATION = "0001_01_01_000003_create_queue_operations_tables"  # and its operator tables
FIX = "oxide vendor:publish queue && oxide migrate"


@dataclass
class TestApp:
    __test__ = False  # not a test class, despite its name

    root: Path
    prefix: str  # every queue of this test starts with it
    redis: Any

    def oxide(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OXIDE_", "QUEUE_", "DB_"))}
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        env["OXIDE_APP"] = "testapp:app"
        return subprocess.run(
            [sys.executable, "-m", "oxide", *args],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def ok(self, *args: str) -> str:
        result = self.oxide(*args)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def store(self) -> DatabaseFailedJobProvider:
        store = store_for(load_config(self.root / "config", environ={}))
        assert isinstance(store, DatabaseFailedJobProvider)
        return store

    def fail(self, queue: str, user_id: int, connection: str = "redis") -> Job:
        """Dispatch a job, take it off its queue and record it as failed, as a worker would."""
        job = Job("auth.user_registered", "testapp.SendWelcomeEmail", {"email": "a@b.c", "user_id": user_id})
        job = job.replace(uuid=f"{self.prefix}{user_id}", attempts=3)
        name = self.prefix + queue
        if connection == "redis":
            self.redis.lpush(queue_key(name), job.to_json())
            assert Job.from_json(self.redis.rpop(queue_key(name))) == job
        provider = provider_for(load_config(self.root / "config", environ={}), connection)
        provider.log(
            FailedJob(
                job.uuid or "",
                connection,
                name,
                job.event_name,
                job.listener_type,
                encode_value(job.payload),
                f"Traceback (most recent call last):\nRuntimeError: smtp down for user {user_id}",
                datetime.now(UTC),
            )
        )
        return job

    def queued(self, queue: str) -> list[Job]:
        return [Job.from_json(body) for body in reversed(self.redis.lrange(queue_key(self.prefix + queue), 0, -1))]


def write_app(root: Path, redis_url: str, prefix: str, database_url: str) -> None:
    (root / "config").mkdir(parents=True)
    (root / "config" / "queue.toml").write_text(
        textwrap.dedent(f"""\
            default = "redis"

            [connections.redis]
            driver = "redis"
            url = "{redis_url}"
            queue = "{prefix}default"

            [connections.down]   # nothing listens on port 1: a Redis that is down
            driver = "redis"
            url = "redis://127.0.0.1:1/13"
            """)
    )
    (root / "config" / "database.toml").write_text(f'default = "main"\n\n[connections.main]\nurl = "{database_url}"\n')
    (root / "testapp.py").write_text(
        textwrap.dedent(f"""\
            from dataclasses import dataclass

            from oxide import App, Event, Mode


            @dataclass
            class UserRegistered(Event):
                event_name = "auth.user_registered"
                user_id: int
                email: str


            class SendWelcomeEmail:
                def handle(self, event: UserRegistered) -> None:
                    pass


            app = App()
            app.listen(UserRegistered, SendWelcomeEmail, Mode.queue("redis").on_queue("{prefix}emails"))
            """)
    )


@pytest.fixture
def app(tmp_path: Path, redis_server_url: str, real_redis: Any, key_prefix: str) -> TestApp:
    root = tmp_path / "app"
    write_app(root, redis_server_url, key_prefix, "sqlite:///database/database.sqlite")
    return TestApp(root, key_prefix, real_redis)


@pytest.fixture
def migrated(app: TestApp) -> TestApp:
    app.ok("vendor:publish", "queue")
    app.ok("migrate")
    return app


def test_publish_and_migrate_are_idempotent_on_every_database(
    scratch_db: ScratchDatabase, redis_server_url: str, key_prefix: str
) -> None:
    root = scratch_db.root / "app"
    write_app(root, redis_server_url, key_prefix, scratch_db.url)
    app = TestApp(root, key_prefix, None)
    published = root / "database" / "migrations" / f"{MIGRATION}.sql"
    jobs = published.with_name(f"{JOBS_MIGRATION}.sql")
    ops = published.with_name(f"{OPS_MIGRATION}.sql")

    assert app.ok("vendor:publish", "queue") == f"Published {published}\nPublished {jobs}\nPublished {ops}\n"
    text = published.read_text()
    assert app.ok("vendor:publish", "queue") == (
        f"Already published, unchanged: {published}\nAlready published, unchanged: {jobs}\n"
        f"Already published, unchanged: {ops}\nNothing to publish.\n"
    )
    assert published.read_text() == text

    assert app.ok("migrate") == f"Migrated: {MIGRATION}\nMigrated: {JOBS_MIGRATION}\nMigrated: {OPS_MIGRATION}\n"
    assert "Nothing to migrate" in app.ok("migrate")
    assert app.ok("queue:failed") == "No failed jobs.\n"


def test_a_failed_job_is_listed_retried_onto_its_queue_and_its_row_deleted(migrated: TestApp) -> None:
    assert migrated.ok("queue:failed") == "No failed jobs.\n"
    job = migrated.fail("emails", 7)

    listing = migrated.ok("queue:failed").splitlines()
    assert listing[0].split() == ["ID", "UUID", "CONNECTION", "QUEUE", "EVENT", "FAILED", "AT"]
    assert listing[1].split()[:5] == ["1", job.uuid, "redis", f"{migrated.prefix}emails", "auth.user_registered"]

    out = migrated.ok("queue:retry", "1")
    assert f"Retried failed job 1 (uuid {job.uuid}) onto redis/{migrated.prefix}emails." in out
    # The original job, attempts reset (absent), on its original queue.
    assert migrated.queued("emails") == [job.replace(attempts=None)]
    assert migrated.ok("queue:failed") == "No failed jobs.\n"


def test_json_lists_every_column(migrated: TestApp) -> None:
    job = migrated.fail("emails", 8)
    [row] = json.loads(migrated.ok("queue:failed", "--json"))
    assert list(row) == [
        "id",
        "uuid",
        "connection",
        "queue",
        "event_name",
        "listener_type",
        "payload",
        "exception",
        "failed_at",
    ]
    assert row["id"] == 1
    assert row["uuid"] == job.uuid
    assert json.loads(row["payload"]) == job.payload
    assert row["exception"].endswith("smtp down for user 8")
    assert datetime.fromisoformat(row["failed_at"]).tzinfo is not None
    migrated.ok("queue:flush")
    assert json.loads(migrated.ok("queue:failed", "--json")) == []


def test_retry_all_and_by_queue(migrated: TestApp) -> None:
    low = [migrated.fail("low", 1), migrated.fail("low", 2)]
    high = migrated.fail("high", 3)
    migrated.ok("queue:retry", "--queue", f"{migrated.prefix}low")
    assert migrated.queued("low") == [j.replace(attempts=None) for j in low]
    assert [r.uuid for r in migrated.store().all()] == [high.uuid]

    assert "Retried 1 failed job(s)." in migrated.ok("queue:retry", "--all")
    assert migrated.queued("high") == [high.replace(attempts=None)]
    assert migrated.store().all() == []
    assert migrated.ok("queue:retry", "--all") == "No failed jobs to retry.\n"


def test_unknown_ids_are_named_and_exit_1_while_known_ones_are_retried(migrated: TestApp) -> None:
    job = migrated.fail("emails", 9)
    result = migrated.oxide("queue:retry", "1", "42", "77")
    assert result.returncode == 1
    assert "no failed job with id 42, 77" in result.stderr
    assert migrated.queued("emails") == [job.replace(attempts=None)]


def test_retry_while_redis_is_down_keeps_the_row_and_exits_1(migrated: TestApp) -> None:
    job = migrated.fail("emails", 10, connection="down")
    result = migrated.oxide("queue:retry", "1")
    assert result.returncode == 1
    assert "failed job 1 not retried, row kept: could not push onto down/" in result.stderr
    assert "Connection refused" in result.stderr
    assert [r.uuid for r in migrated.store().all()] == [job.uuid]


def test_forget_flush_and_prune(migrated: TestApp) -> None:
    for user_id in (1, 2, 3):
        migrated.fail("emails", user_id)
    assert migrated.ok("queue:forget", "2") == "Deleted failed job 2.\n"
    missing = migrated.oxide("queue:forget", "2")
    assert missing.returncode == 1
    assert "no failed job with id 2" in missing.stderr

    store = migrated.store()
    old = FailedJob("old", "redis", "q", "e", "l", "{}", "x", datetime.now(UTC) - timedelta(hours=50))
    store.log(old)
    out = migrated.ok("queue:prune-failed", "--hours", "48")
    assert out == "Deleted 1 failed job(s) that failed more than 48 hour(s) ago.\n"
    assert migrated.ok("queue:flush") == "Deleted 2 failed job(s).\n"
    assert migrated.ok("queue:flush") == "No failed jobs to delete.\n"


def test_commands_before_migrate_name_the_fix(app: TestApp) -> None:
    result = app.oxide("queue:failed")
    assert result.returncode == 1
    assert f"does not exist; create it with: {FIX}" in result.stderr
    (app.root / "database").mkdir()
    (app.root / "database" / "database.sqlite").touch()
    result = app.oxide("queue:failed")
    assert result.returncode == 1
    assert (
        f"table 'failed_jobs' does not exist in database 'main' (sqlite:///database/database.sqlite); create it with: {FIX}"
        in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_a_database_password_never_reaches_the_terminal(tmp_path: Path, redis_server_url: str) -> None:
    root = tmp_path / "app"
    write_app(root, redis_server_url, "p-", "postgresql://app:pw-0f-d00m@127.0.0.1:1/app")
    result = TestApp(root, "p-", None).oxide("-v", "queue:failed")
    assert result.returncode == 1
    assert "pw-0f-d00m" not in result.stderr + result.stdout
    assert "postgresql://app:***@127.0.0.1:1/app" in result.stderr


@pytest.mark.parametrize(
    "args",
    [("queue:retry",), ("queue:retry", "one"), ("queue:retry", "1", "--all"), ("vendor:publish", "nothing")],
)
def test_usage_errors_exit_2(app: TestApp, args: tuple[str, ...]) -> None:
    result = app.oxide(*args)
    assert result.returncode == 2
    assert "error" in result.stderr


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ("queue:failed", "--json"),
        ("queue:retry", "--queue NAME"),
        ("queue:forget", "without retrying"),
        ("queue:flush", "how many"),
        ("queue:prune-failed", "--hours N"),
        ("vendor:publish", "database/migrations/"),
        ("migrate", "oxide_migrations"),
    ],
)
def test_every_command_explains_itself(app: TestApp, command: str, words: str) -> None:
    assert words in app.ok(command, "--help")


def test_failures_parked_while_the_table_was_missing_are_listed_once_it_exists(app: TestApp) -> None:
    job = app.fail("emails", 11)  # before migrate: the worker's provider parks it in Redis
    assert app.redis.llen(queue_key(app.prefix + "emails") + ":failed") == 1
    app.ok("vendor:publish", "queue")
    app.ok("migrate")
    result = app.oxide("queue:failed", "--json")
    assert result.returncode == 0, result.stderr
    assert [row["uuid"] for row in json.loads(result.stdout)] == [job.uuid]
    assert "Moved 1 parked failed job(s) into failed_jobs." in result.stderr
    assert app.redis.exists(queue_key(app.prefix + "emails") + ":failed") == 0
