"""Any job survives failed_jobs -> retry -> its queue, byte for byte (attempts aside), on every database.

The database is real (SQLite, PostgreSQL, MariaDB through ``scratch_db``); the Redis
side is fakeredis, since only what lands on the list matters here, not timing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oxide.config import parse_database_url
from oxide.db import connect_database
from oxide.db.migrations import Migrator, load_migrations, publish
from oxide.drivers.redis import queue_key
from oxide.failed import FailedJob
from oxide.failed.retry import retry_jobs
from oxide.failed.store import DatabaseFailedJobProvider
from oxide.wire import I64_MIN, U64_MAX, Job, encode_value
from tests.conftest import ScratchDatabase, redis_driver_for
from tests.hypothesis_profiles import examples

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(I64_MIN, U64_MAX)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=12,
)
queue_names = st.from_regex(r"[A-Za-z0-9_.-]{1,128}", fullmatch=True)
# Event and listener names: any text but U+0000, which PostgreSQL text cannot hold (see the store suite).
names = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), min_size=1, max_size=80)
EXAMPLES = settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def store(scratch_db: ScratchDatabase) -> Iterator[DatabaseFailedJobProvider]:
    database = connect_database(parse_database_url(scratch_db.url), scratch_db.root, create=True)
    directory = scratch_db.root / "database" / "migrations"
    publish("queue", directory)
    Migrator(database).migrate(load_migrations(directory))
    yield DatabaseFailedJobProvider(database)
    database.close()


def fail_and_retry(store: DatabaseFailedJobProvider, redis: Any, job: FailedJob) -> tuple[str, bytes]:
    """Record ``job``, retry its row, and return (the stored exception, the body pushed onto its queue)."""
    store.log(job)
    [row] = [r for r in store.all() if r.uuid == job.uuid]
    driver = redis_driver_for(redis)
    report = retry_jobs([row], store, lambda _connection, queue, body: driver.push(queue, body))
    assert report.problems == []
    assert store.find([row.id]) == []
    assert redis.llen(queue_key(job.queue)) == 1
    return row.exception, redis.rpop(queue_key(job.queue))


jobs = st.builds(
    lambda event, listener, payload, job_uuid, attempts: Job(event, listener, payload, str(job_uuid), attempts),
    names,
    names,
    json_values,
    st.uuids(),
    st.none() | st.integers(0, 50),
)


@EXAMPLES
@given(original=jobs, exception=st.text(), queue=queue_names)
def test_a_job_comes_back_as_it_was_pushed(
    store: DatabaseFailedJobProvider, fake_redis: Any, original: Job, exception: str, queue: str
) -> None:
    failed = FailedJob(
        original.uuid or "",
        "redis",
        queue,
        original.event_name,
        original.listener_type,
        encode_value(original.payload),
        exception,
        datetime.now(UTC),
    )
    stored_exception, body = fail_and_retry(store, fake_redis, failed)
    assert body == original.replace(attempts=None).to_json().encode("utf-8")
    # Exception text is kept exactly, but for U+0000 on PostgreSQL, which is written as a visible escape.
    postgresql = store.database.dialect.name == "postgresql"
    assert stored_exception == (exception.replace("\x00", "\\x00") if postgresql else exception)


@EXAMPLES
@given(raw=st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",))), queue=queue_names)
def test_an_undecodable_message_comes_back_verbatim(
    store: DatabaseFailedJobProvider, fake_redis: Any, raw: str, queue: str
) -> None:
    failed = FailedJob(str(uuid.uuid4()), "redis", queue, "", "", raw, "JobDecodeError: ...", datetime.now(UTC))
    _, body = fail_and_retry(store, fake_redis, failed)
    assert body == raw.encode("utf-8")
