"""The worker loop against fakeredis with a fake clock: priority, stop conditions, poison messages, reconnects."""

from __future__ import annotations

import logging
import sys
import uuid
from typing import Any

import pytest

from oxide import ConnectionUnavailable, OxideError, QueueNameError
from oxide.drivers import Delivery
from oxide.wire import Job, encode_value
from oxide.worker import StopReason, WorkerOptions, failed_job_for
from tests.worker_support import ASYNC_RECORDER, EXPLODE, AsyncRecorder, Harness, greet, make_harness


@pytest.fixture
def h(fake_redis: Any) -> Harness:
    return make_harness(fake_redis)


# -- priority ------------------------------------------------------------------------------------


def test_takes_in_strict_priority_then_fifo_within_a_queue(h: Harness) -> None:
    for n in range(3):
        h.push("low", greet(f"low{n}"))
        h.push("default", greet(f"default{n}"))
        h.push("high", greet(f"high{n}"))
    reason = h.worker(["high", "default", "low"]).run()
    assert reason is StopReason.QUEUE_EMPTY
    assert h.recorder.seen == [f"{q}{n}" for q in ("high", "default", "low") for n in range(3)]
    assert [d.queue for d in h.driver.taken] == ["high"] * 3 + ["default"] * 3 + ["low"] * 3


def test_a_job_pushed_to_a_higher_queue_mid_run_is_taken_next(h: Harness) -> None:
    h.push("low", greet("low0"), greet("low1"))

    def push_high(event: Any) -> None:
        if event.name == "low0":
            h.push("high", greet("urgent"))

    h.recorder.on_handle = push_high
    h.worker(["high", "low"]).run()
    assert h.recorder.seen == ["low0", "urgent", "low1"]


@pytest.mark.parametrize(("block_timeout_secs", "wait"), [(5.0, 1.0), (1.0, 1.0), (0.25, 0.25)])
def test_each_take_waits_at_most_a_second(fake_redis: Any, block_timeout_secs: float, wait: float) -> None:
    h = make_harness(fake_redis, block_timeout_secs)
    h.worker(["default"], WorkerOptions(max_time_secs=3.0)).run()
    assert h.driver.waits
    assert set(h.driver.waits) == {wait}


# -- stop conditions: each asserted by its reason ------------------------------------------------


def test_stop_when_empty_on_an_empty_queue_takes_once(h: Harness) -> None:
    assert h.worker(["default"]).run() is StopReason.QUEUE_EMPTY
    assert len(h.driver.waits) == 1


def test_once_runs_one_job_and_leaves_the_rest(h: Harness) -> None:
    h.push("default", greet("a"), greet("b"), greet("c"))
    assert h.worker(["default"], WorkerOptions(once=True)).run() is StopReason.ONCE
    assert h.recorder.seen == ["a"]
    assert h.remaining("default") == 2


def test_once_on_an_empty_queue_gives_up_after_block_timeout(h: Harness) -> None:
    started = h.clock.now
    assert h.worker(["default"], WorkerOptions(once=True)).run() is StopReason.QUEUE_EMPTY
    assert h.clock.now - started == pytest.approx(5.0)
    assert h.driver.waits == [1.0] * 5


def test_once_takes_a_job_that_arrives_while_it_waits(h: Harness) -> None:
    pop = h.driver.pop

    def arrive_on_third_take(queues: Any, timeout_secs: float) -> Delivery | None:
        if len(h.driver.waits) == 2:
            h.push("default", greet("late"))
        return pop(queues, timeout_secs)

    h.driver.pop = arrive_on_third_take  # type: ignore[method-assign]
    assert h.worker(["default"], WorkerOptions(once=True)).run() is StopReason.ONCE
    assert h.recorder.seen == ["late"]


def test_max_jobs_counts_failed_jobs_too(h: Harness) -> None:
    h.push("default", greet("a"), "not json", greet("b"), greet("c"), greet("d"))
    assert h.worker(["default"], WorkerOptions(max_jobs=3)).run() is StopReason.MAX_JOBS
    assert h.recorder.seen == ["a", "b"]
    assert len(h.failed) == 1
    assert h.remaining("default") == 2


def test_max_jobs_equal_to_the_backlog_stops_without_another_take(h: Harness) -> None:
    h.push("default", greet("a"), greet("b"))
    assert h.worker(["default"], WorkerOptions(max_jobs=2, stop_when_empty=True)).run() is StopReason.MAX_JOBS
    assert len(h.driver.waits) == 2


def test_max_time_lets_the_job_in_hand_finish(h: Harness) -> None:
    h.push("default", *(greet(f"j{n}") for n in range(5)))
    h.recorder.on_handle = lambda event: h.clock.advance(4.0)
    assert h.worker(["default"], WorkerOptions(max_time_secs=10.0)).run() is StopReason.MAX_TIME
    # 4 s per job: the third one ends at 12 s, past the limit, and is not cut short.
    assert h.recorder.seen == ["j0", "j1", "j2"]
    assert h.remaining("default") == 2


def test_max_time_stops_an_idle_worker(h: Harness) -> None:
    started = h.clock.now
    assert h.worker(["default"], WorkerOptions(max_time_secs=3.0)).run() is StopReason.MAX_TIME
    assert h.clock.now - started == pytest.approx(3.0)


def test_stop_request_finishes_the_job_in_hand(h: Harness) -> None:
    h.push("default", greet("a"), greet("b"))
    worker = h.worker(["default"], WorkerOptions(max_time_secs=60.0))
    h.recorder.on_handle = lambda event: worker.stop()
    assert worker.run() is StopReason.INTERRUPTED
    assert h.recorder.seen == ["a"]
    assert h.remaining("default") == 1


def test_interrupted_outranks_the_other_reasons(h: Harness) -> None:
    h.push("default", greet("a"), greet("b"))
    worker = h.worker(["default"], WorkerOptions(once=True, max_jobs=1, max_time_secs=1.0))
    h.recorder.on_handle = lambda event: (worker.stop(), h.clock.advance(5.0))
    assert worker.run() is StopReason.INTERRUPTED


def test_sync_connection_has_nothing_to_consume(h: Harness) -> None:
    from oxide.worker import Worker

    worker = Worker(
        h.app,
        "sync",
        None,
        WorkerOptions(max_time_secs=60.0),
        clock=h.clock,
        sleep=h.clock.sleep,
        failer=h.failed.append,
    )
    assert worker.run() is StopReason.NOTHING_TO_CONSUME
    assert h.clock.sleeps == []


# -- poison messages and failing listeners -------------------------------------------------------

POISON = [
    pytest.param(b"{not json", "JobDecodeError", id="invalid-json"),
    pytest.param(b"[1,2,3]", "JobDecodeError", id="not-an-object"),
    pytest.param(b'{"event_name":"test.greeted","payload":{}}', "JobDecodeError", id="missing-field"),
    pytest.param(b"\xff\xfe{}", "JobDecodeError", id="not-utf8"),
    pytest.param(
        Job("test.greeted", "myapp.Nobody", {"name": "x"}).to_json().encode(),
        "ListenerNotRegistered",
        id="unknown-listener",
    ),
    pytest.param(
        Job("test.unknown", "tests.worker_support.Recorder", {}).to_json().encode(),
        "ListenerNotRegistered",
        id="unknown-event",
    ),
    pytest.param(
        Job("test.greeted", "tests.worker_support.Recorder", {"nom": 1}).to_json().encode(),
        "JobDecodeError",
        id="bad-payload",
    ),
    pytest.param(
        Job("test.greeted", "tests.worker_support.Recorder", [1]).to_json().encode(),
        "JobDecodeError",
        id="payload-not-object",
    ),
    pytest.param(greet("boom", listener=EXPLODE).encode(), "RuntimeError", id="listener-raises"),
]


@pytest.mark.parametrize(("body", "error"), POISON)
def test_poison_becomes_a_failed_job_and_the_next_job_runs(h: Harness, body: bytes, error: str) -> None:
    h.driver.client.lpush("oxide:queue:default", body)
    h.push("default", greet("after"))
    assert h.worker(["default"]).run() is StopReason.QUEUE_EMPTY
    assert h.recorder.seen == ["after"]
    (record,) = h.failed
    assert record.connection == "redis"
    assert record.queue == "default"
    assert f"{error}:" in record.exception
    assert "Traceback (most recent call last)" in record.exception
    uuid.UUID(record.uuid)  # always a uuid, even when the body had none
    try:
        job: Job | None = Job.from_json(body)
    except OxideError:
        job = None
    if job is None:
        assert (record.event_name, record.listener_type) == ("", "")
        assert record.payload == body.decode("utf-8", "backslashreplace")
    else:
        assert (record.event_name, record.listener_type) == (job.event_name, job.listener_type)
        assert record.payload == encode_value(job.payload)


def test_undecodable_body_is_kept_whole(h: Harness) -> None:
    body = '{"event_name": "x", oops  \n trailing ✓'
    h.push("default", body)
    h.worker(["default"]).run()
    (record,) = h.failed
    assert record.payload == body


def test_failed_job_keeps_the_job_uuid_and_canonical_payload(h: Harness) -> None:
    raw = (
        '{"event_name":"test.greeted","listener_type":"tests.worker_support.Explode",'
        '"payload":{"name":"z", "extra": {"b": 1.50, "a": [ 1 ]}},"uuid":"job-7"}'
    )
    h.push("default", raw)
    h.worker(["default"]).run()
    (record,) = h.failed
    assert record.uuid == "job-7"
    assert record.listener_type == EXPLODE
    assert record.payload == '{"extra":{"a":[1],"b":1.5},"name":"z"}'


def test_a_job_without_uuid_gets_a_fresh_one_per_failure() -> None:
    delivery = Delivery("default", b"nope")
    first = failed_job_for("redis", delivery, None, ValueError("x"))
    second = failed_job_for("redis", delivery, None, ValueError("x"))
    assert first.uuid != second.uuid


def test_the_wire_never_makes_the_worker_import_a_module(h: Harness) -> None:
    assert "this" not in sys.modules
    h.push("default", Job("test.greeted", "this.Listener", {"name": "x"}).to_json())
    h.worker(["default"]).run()
    assert "this" not in sys.modules
    (record,) = h.failed
    assert "ListenerNotRegistered" in record.exception


def test_a_failer_that_raises_logs_the_whole_record_and_the_worker_goes_on(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_store(record: Any) -> None:
        raise OxideError("database is down")

    h.push("default", greet("boom", listener=EXPLODE, job_uuid="u-123"), greet("next"))
    with caplog.at_level(logging.ERROR, logger="oxide.worker"):
        assert h.worker(["default"], failer=broken_store).run() is StopReason.QUEUE_EMPTY
    assert h.recorder.seen == ["next"]
    (message,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "database is down" in message
    assert "uuid=u-123" in message
    assert 'payload={"name":"boom"}' in message
    assert "RuntimeError: listener exploded on boom" in message


def test_async_listeners_share_one_event_loop(h: Harness) -> None:
    AsyncRecorder.loops.clear()
    for n in range(3):
        h.push("default", Job("test.parted", ASYNC_RECORDER, {"name": f"p{n}"}).to_json())
    h.worker(["default"]).run()
    assert len(AsyncRecorder.loops) == 3
    assert len(set(AsyncRecorder.loops)) == 1
    assert h.failed == []


def test_each_outcome_is_logged_with_queue_event_listener_uuid_and_duration(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h.push("default", greet("a", job_uuid="u-ok"), greet("b", listener=EXPLODE, job_uuid="u-bad"))
    h.recorder.on_handle = lambda event: h.clock.advance(0.25)
    with caplog.at_level(logging.INFO, logger="oxide.worker"):
        h.worker(["default"]).run()
    lines = [r.getMessage() for r in caplog.records if "outcome=" in r.getMessage()]
    assert lines[0] == (
        "queue=default event=test.greeted listener=tests.worker_support.Recorder uuid=u-ok "
        "duration_ms=250.0 outcome=done attempt=1"
    )
    assert lines[1].startswith(
        "queue=default event=test.greeted listener=tests.worker_support.Explode uuid=u-bad duration_ms=0.0 "
        "outcome=failed error=RuntimeError: listener exploded on b"
    )


# -- lost connections ----------------------------------------------------------------------------


def test_lost_connection_backs_off_exponentially_then_resumes(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    h.driver.failures = [ConnectionUnavailable("redis connection 'redis': refused")] * 3
    h.push("default", greet("a"))
    with caplog.at_level(logging.INFO, logger="oxide.worker"):
        assert h.worker(["default"]).run() is StopReason.QUEUE_EMPTY
    assert h.recorder.seen == ["a"]
    assert h.driver.closed == 3
    # 0.1 s, 0.2 s, 0.4 s, each slept in slices of at most 0.1 s so a signal is noticed promptly.
    assert sum(h.clock.sleeps) == pytest.approx(0.7)
    assert max(h.clock.sleeps) <= 0.1 + 1e-9
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unavailable: redis connection" in m for m in messages) == 3
    assert any("is back after 3 failed attempts" in m for m in messages)


def test_backoff_is_capped(h: Harness) -> None:
    h.driver.failures = [ConnectionUnavailable("down")] * 9
    options = WorkerOptions(stop_when_empty=True, reconnect_initial_secs=1.0, reconnect_max_secs=4.0)
    h.worker(["default"], options).run()
    # 1 + 2 + 4 + 4 + 4 + 4 + 4 + 4 + 4
    assert sum(h.clock.sleeps) == pytest.approx(31.0)


def test_an_unexpected_error_from_a_take_is_retried_not_fatal(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    import redis

    h.driver.failures = [redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")]
    h.push("default", greet("a"))
    with caplog.at_level(logging.ERROR, logger="oxide.worker"):
        assert h.worker(["default"]).run() is StopReason.QUEUE_EMPTY
    assert h.recorder.seen == ["a"]
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage() == "take failed on connection=redis"
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], redis.ResponseError)


def test_a_stop_request_ends_the_backoff_wait_early(h: Harness) -> None:
    h.driver.failures = [ConnectionUnavailable("down")] * 100
    workers = []

    def sleep_then_stop(secs: float) -> None:
        h.clock.sleep(secs)
        workers[0].stop()

    worker = h.worker(
        ["default"],
        WorkerOptions(max_time_secs=60.0, reconnect_initial_secs=5.0, reconnect_max_secs=5.0),
        sleep=sleep_then_stop,
    )
    workers.append(worker)
    assert worker.run() is StopReason.INTERRUPTED
    assert h.clock.sleeps == [pytest.approx(0.1)]


def test_max_time_also_bounds_an_outage(h: Harness) -> None:
    h.driver.failures = [ConnectionUnavailable("down")] * 1000
    assert h.worker(["default"], WorkerOptions(max_time_secs=12.0)).run() is StopReason.MAX_TIME


# -- construction ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "queues",
    [["high", "high"], ["a:b"], [""], ["x" * 129], [], ["ok", "no space"]],
    ids=["duplicate", "colon", "empty-name", "too-long", "no-queues", "space"],
)
def test_bad_queue_lists_are_refused(h: Harness, queues: list[str]) -> None:
    with pytest.raises(QueueNameError):
        h.worker(queues)


def test_default_queue_comes_from_the_connection(h: Harness) -> None:
    assert h.worker(None).queues == ("default",)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_jobs": 0}, {"max_jobs": -1}, {"max_time_secs": 0.0}, {"max_time_secs": float("inf")}],
)
def test_bad_options_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(OxideError):
        WorkerOptions(**kwargs)
