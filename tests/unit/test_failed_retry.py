"""retry_jobs in-process: push first, then forget; what each failure keeps and what it stops."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from oxide.errors import ConnectionUnavailable, OxideError
from oxide.failed import StoredFailedJob
from oxide.failed.retry import retry_body, retry_jobs
from oxide.wire import Job


def row(
    row_id: int, connection: str = "redis", *, event_name: str = "test.greeted", payload: str = '{"name":"a"}'
) -> StoredFailedJob:
    return StoredFailedJob(
        uuid=f"uuid-{row_id}",
        connection=connection,
        queue="default",
        event_name=event_name,
        listener_type="tests.Listener",
        payload=payload,
        exception="RuntimeError: boom",
        failed_at=datetime(2026, 1, 1, tzinfo=UTC),
        id=row_id,
    )


class Store:
    """Only what retry_jobs calls: forget, optionally refusing."""

    def __init__(self, refuse: bool = False) -> None:
        self.forgotten: list[int] = []
        self.refuse = refuse

    def forget(self, job_id: int) -> bool:
        if self.refuse:
            raise OxideError("database is down")
        self.forgotten.append(job_id)
        return True


class Pusher:
    def __init__(self, failing: dict[str, Exception] | None = None) -> None:
        self.failing = failing or {}
        self.pushed: list[tuple[str, str, str]] = []
        self.attempts: list[str] = []

    def __call__(self, connection: str, queue: str, body: str) -> None:
        self.attempts.append(connection)
        if connection in self.failing:
            raise self.failing[connection]
        self.pushed.append((connection, queue, body))


def test_retry_body_rebuilds_the_job_with_attempts_reset_and_the_uuid_kept() -> None:
    job = Job.from_json(retry_body(row(1)))
    assert (job.event_name, job.listener_type, job.payload, job.uuid, job.attempts) == (
        "test.greeted",
        "tests.Listener",
        {"name": "a"},
        "uuid-1",
        None,
    )


def test_retry_body_of_an_undecodable_message_is_its_raw_body() -> None:
    assert retry_body(row(1, event_name="", payload="not json at all")) == "not json at all"


def test_retry_body_refuses_a_payload_that_is_not_json() -> None:
    with pytest.raises(OxideError, match="failed job 7: its payload is not valid JSON"):
        retry_body(row(7, payload="{broken"))


def test_each_row_is_pushed_then_forgotten_in_order() -> None:
    store, push, seen = Store(), Pusher(), []
    report = retry_jobs([row(1), row(2)], store, push, on_retried=seen.append)  # type: ignore[arg-type]
    assert [r.id for r in report.retried] == [1, 2]
    assert [r.id for r in seen] == [1, 2]
    assert store.forgotten == [1, 2]
    assert [(c, q) for c, q, _ in push.pushed] == [("redis", "default"), ("redis", "default")]
    assert report.problems == []


def test_an_unreachable_connection_is_tried_once_and_its_rows_are_kept() -> None:
    store = Store()
    push = Pusher({"down": ConnectionUnavailable("refused")})
    report = retry_jobs([row(1, "down"), row(2, "redis"), row(3, "down")], store, push)  # type: ignore[arg-type]
    assert push.attempts == ["down", "redis"]
    assert store.forgotten == [2]
    assert report.problems == [
        "failed job 1 not retried, row kept: could not push onto down/default: refused",
        "failed job 3 not retried, row kept: 'down' is unreachable",
    ]


def test_any_other_push_error_keeps_that_row_only() -> None:
    store = Store()
    push = Pusher({"sync": ValueError("listener raised")})
    report = retry_jobs([row(1, "sync"), row(2, "sync")], store, push)  # type: ignore[arg-type]
    assert push.attempts == ["sync", "sync"]  # not a connection problem: the next row is tried
    assert store.forgotten == []
    assert report.problems == [
        "failed job 1 not retried, row kept: could not push onto sync/default: listener raised",
        "failed job 2 not retried, row kept: could not push onto sync/default: listener raised",
    ]


def test_a_row_whose_payload_is_broken_is_kept_and_the_rest_go_on() -> None:
    store, push = Store(), Pusher()
    report = retry_jobs([row(1, payload="{broken"), row(2)], store, push)  # type: ignore[arg-type]
    assert store.forgotten == [2]
    assert report.problems[0].startswith("failed job 1 not retried, row kept: could not push onto redis/default:")


def test_a_store_that_cannot_forget_stops_the_retry_after_the_push() -> None:
    store, push, seen = Store(refuse=True), Pusher(), []
    report = retry_jobs([row(1), row(2)], store, push, on_retried=seen.append)  # type: ignore[arg-type]
    assert len(push.pushed) == 1
    assert report.retried == []
    assert seen == []
    assert report.problems == [
        "failed job 1 was pushed onto redis/default but its row could not be deleted (database is down); "
        "once the database answers, delete it with: oxide queue:forget 1",
        "stopped: the remaining failed jobs were not retried",
    ]


def test_rows_after_one_skipped_for_an_unreachable_connection_are_still_retried() -> None:
    store = Store()
    push = Pusher({"down": ConnectionUnavailable("refused")})
    report = retry_jobs([row(1, "down"), row(2, "down"), row(3, "redis")], store, push)  # type: ignore[arg-type]
    assert push.attempts == ["down", "redis"]
    assert store.forgotten == [3]
    assert [r.id for r in report.retried] == [3]


def test_what_is_pushed_is_the_rebuilt_job() -> None:
    push = Pusher()
    retry_jobs([row(1)], Store(), push)  # type: ignore[arg-type]
    assert push.pushed == [("redis", "default", retry_body(row(1)))]
    assert Job.from_json(push.pushed[0][2]).payload == {"name": "a"}
