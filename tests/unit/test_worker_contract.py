"""The worker's observable contract, line by line: the exact log line of each event, the counters,
process()'s answer, the options it refuses, the failure record, and prefetched jobs' reservations."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import signal
import traceback
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from oxide import OxideError
from oxide.attempts import AttemptPolicy
from oxide.config import ConnectionConfig
from oxide.drivers import Delivery
from oxide.drivers.redis import RedisDriver
from oxide.drivers.reservations import keys_of
from oxide.errors import ConnectionUnavailable, QueueNameError
from oxide.supervision import EXIT_STUCK
from oxide.wire import Job
from oxide.worker import StopReason, Worker, WorkerOptions, failed_job_for
from tests.conftest import redis_driver_for
from tests.worker_support import EXPLODE, RECORDER, Greeted, Harness, greet, make_harness


@pytest.fixture
def h(fake_redis: Any) -> Harness:
    return make_harness(fake_redis)


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "oxide.worker"]


def described(queue: str, listener: str, uuid: str) -> str:
    """The start of every outcome line, with the fake clock standing still (duration 0)."""
    return f"queue={queue} event=test.greeted listener={listener} uuid={uuid} duration_ms=0.0"


def reserved_count(h: Harness, queue: str) -> int:
    return int(h.driver.client.zcard(keys_of(queue)[1]))


def clocked_driver(h: Harness, **settings: Any) -> RedisDriver:
    """The real RedisDriver (a batch taker) whose reservation deadlines follow the fake clock."""
    return RedisDriver(
        ConnectionConfig(name="redis", driver="redis", **settings),
        client=h.driver.client,
        clock_ms=lambda: round(h.clock.now * 1000),
    )


# -- options and construction ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"max_time_secs": math.inf},
            "WorkerOptions.max_time_secs: expected seconds > 0 or None, got inf",
        ),
        (
            {"reconnect_initial_secs": 2.0, "reconnect_max_secs": 1.0},
            "WorkerOptions: expected 0 < reconnect_initial_secs <= reconnect_max_secs",
        ),
        (
            {"policy": AttemptPolicy(timeout_secs=math.inf)},
            "WorkerOptions.policy.timeout_secs: expected seconds > 0, got inf",
        ),
    ],
)
def test_worker_options_refuse_with_the_exact_message(options: dict[str, Any], message: str) -> None:
    with pytest.raises(OxideError) as refused:
        WorkerOptions(**options)
    assert str(refused.value) == message


def test_a_prefetch_of_one_is_accepted() -> None:
    assert WorkerOptions(prefetch=1).prefetch == 1


def test_queue_list_errors_name_the_problem(h: Harness) -> None:
    with pytest.raises(QueueNameError) as empty:
        h.worker([])
    assert str(empty.value) == "a worker needs at least one queue name"
    with pytest.raises(QueueNameError) as twice:
        h.worker(["a", "b", "a"])
    assert str(twice.value) == "queue 'a' is listed twice: a,b,a"


def test_a_worker_built_with_defaults_uses_the_connection_queue_and_the_configured_failer(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    # No options, no queue list and no failer: WorkerOptions(), the connection's queue and [failed] driver = "none".
    worker = Worker(h.app, "redis", None, driver=h.driver, clock=h.clock, sleep=h.clock.sleep)
    assert worker.options == WorkerOptions()
    assert worker.queues == ("default",)
    h.push("default", greet("a", listener=EXPLODE))
    delivery = h.driver.pop(["default"], 1.0)
    assert delivery is not None
    with caplog.at_level(logging.ERROR):
        assert worker.process(delivery) is False
    assert any(m.startswith("failed job dropped (failed.driver = none)") for m in caplog.messages)
    assert not any("could not record failed job" in m for m in caplog.messages)
    assert reserved_count(h, "default") == 0  # recorded, so acknowledged


# -- the run's own log lines --------------------------------------------------------------------------


def test_a_connection_that_keeps_no_jobs_says_so_and_returns_at_once(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    worker = Worker(h.app, "sync", None, failer=h.failed.append)
    with caplog.at_level(logging.INFO, "oxide.worker"):
        assert worker.run() is StopReason.NOTHING_TO_CONSUME
    assert lines(caplog) == ["connection=sync driver=sync keeps no jobs: nothing to consume"]


def test_start_outcome_and_stop_lines_with_the_counters(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    uuids = ["u-ok", "u-retried", "u-failed"]
    h.push("low", greet("ok", job_uuid=uuids[0]))
    h.push("high", greet("boom", listener=EXPLODE, job_uuid=uuids[2]))
    worker = h.worker(
        ["high", "low"], WorkerOptions(stop_when_empty=True, policy=AttemptPolicy(tries=2, backoff_secs=0.0))
    )
    with caplog.at_level(logging.INFO, "oxide.worker"):
        assert worker.run() is StopReason.QUEUE_EMPTY
    assert (worker.jobs_processed, worker.jobs_failed) == (3, 2)  # one retry and one failure both count
    assert lines(caplog) == [
        "worker started: connection=redis queues=high,low",
        f"{described('high', EXPLODE, uuids[2])} outcome=retry attempt=1/2 delay_s=0.00 "
        "error=RuntimeError: listener exploded on boom",
        f"{described('high', EXPLODE, uuids[2])} outcome=failed error=RuntimeError: listener exploded on boom",
        f"{described('low', RECORDER, uuids[0])} outcome=done attempt=1",
        "worker stopped: reason=queue_empty connection=redis jobs=3 failed=2",
    ]


def test_the_stop_line_names_the_signal(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    h.push("default", greet("a"))
    h.recorder.on_handle = lambda event: os.kill(os.getpid(), signal.SIGTERM)
    worker = h.worker(["default"], WorkerOptions())
    try:
        with caplog.at_level(logging.INFO, "oxide.worker"):
            assert worker.run() is StopReason.INTERRUPTED
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    assert lines(caplog)[-1] == "worker stopped: reason=interrupted (SIGTERM) connection=redis jobs=1 failed=0"


def test_stop_without_a_signal_names_none(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    h.push("default", greet("a"))
    worker = h.worker(["default"], WorkerOptions())
    h.recorder.on_handle = lambda event: worker.stop()
    with caplog.at_level(logging.INFO, "oxide.worker"):
        assert worker.run() is StopReason.INTERRUPTED
    assert lines(caplog)[-1] == "worker stopped: reason=interrupted connection=redis jobs=1 failed=0"


# -- reconnecting ---------------------------------------------------------------------------------------


def test_reconnect_lines_and_the_backoff_starts_over_once_the_connection_is_back(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    def failing_close() -> None:
        raise OSError("socket already gone")

    h.driver.close = failing_close  # type: ignore[method-assign]
    h.driver.failures = [ConnectionUnavailable("refused"), ValueError("WRONGTYPE")]
    worker = h.worker(["default"], WorkerOptions(stop_when_empty=True))
    with caplog.at_level(logging.DEBUG, "oxide.worker"):
        worker._cycle()
        worker._cycle()
        h.push("default", greet("a"))
        worker._cycle()  # back: the job is taken and run
        h.driver.failures = [ConnectionUnavailable("refused again")]
        worker._cycle()
    assert [m for m in lines(caplog) if "outcome=" not in m] == [
        "connection=redis unavailable: refused; retrying in 0.1s (attempt 1)",
        "closing connection=redis failed: socket already gone",
        "take failed on connection=redis",
        "connection=redis take failed: ValueError: WRONGTYPE; retrying in 0.2s (attempt 2)",
        "closing connection=redis failed: socket already gone",
        "connection=redis is back after 2 failed attempts",
        # The count started over: the first delay again, attempt 1.
        "connection=redis unavailable: refused again; retrying in 0.1s (attempt 1)",
        "closing connection=redis failed: socket already gone",
    ]
    assert h.recorder.seen == ["a"]


# -- process() and its outcomes -------------------------------------------------------------------------


def test_process_answers_false_for_each_kind_of_failure(h: Harness) -> None:
    worker = h.worker(["default"], WorkerOptions(policy=AttemptPolicy(tries=2)))
    undecodable = Delivery("default", b"not json")
    assert worker.process(undecodable) is False
    h.push("default", greet("a", listener=EXPLODE))
    delivery = h.driver.pop(["default"], 1.0)
    assert delivery is not None
    assert worker.process(delivery) is False  # retried
    last_try = Job.from_json(delivery.body).replace(attempts=1).to_json().encode()
    assert worker.process(Delivery("default", last_try)) is False  # failed for good
    assert worker.jobs_failed == 3


def test_an_exhausted_or_interrupted_job_is_recorded_with_its_event_and_listener(h: Harness) -> None:
    worker = h.worker(["default"], WorkerOptions(policy=AttemptPolicy(tries=1)))
    body = Job.from_json(greet("a")).replace(attempts=1).to_json()
    assert worker.process(Delivery("default", body.encode())) is False

    def exit_now(event: Greeted) -> None:
        raise SystemExit(3)

    h.recorder.on_handle = exit_now
    with pytest.raises(SystemExit):
        worker.process(Delivery("default", greet("b").encode()))
    assert [(f.event_name, f.listener_type) for f in h.failed] == [("test.greeted", RECORDER)] * 2
    assert worker.jobs_failed == 2


def test_a_job_held_past_a_third_of_the_visibility_timeout_gets_a_heartbeat(h: Harness) -> None:
    extended: list[Delivery] = []
    extend = h.driver.extend

    def recording_extend(delivery: Delivery) -> bool:
        extended.append(delivery)
        return extend(delivery)

    h.driver.extend = recording_extend  # type: ignore[method-assign]
    worker = h.worker(["default"], WorkerOptions(policy=AttemptPolicy(timeout_secs=1000.0)))

    def long_job(event: Greeted) -> None:
        h.clock.advance(30.0)  # a third of the 90 s visibility timeout, on the worker's clock
        worker._supervisor.check()  # the supervisor thread's tick, run here so that it is not timing-bound

    h.recorder.on_handle = long_job
    h.push("default", greet("a"))
    delivery = h.driver.pop(["default"], 1.0)
    assert delivery is not None
    assert worker.process(delivery) is True
    assert extended == [delivery]


def test_after_run_process_acknowledges_at_once_again(h: Harness) -> None:
    driver = redis_driver_for(h.driver.client, poll_interval_secs=0.01)
    worker = h.worker(["default"], WorkerOptions(max_jobs=1), driver=driver)
    h.push("default", greet("a"), greet("b"))
    assert worker.run() is StopReason.MAX_JOBS
    assert reserved_count(h, "default") == 0  # the last job's acknowledgement was sent on the way out
    delivery = driver.pop(["default"], 0.01)
    assert delivery is not None
    assert worker.process(delivery) is True
    assert reserved_count(h, "default") == 0


def outcome_lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "oxide.worker" and r.levelno == level]


def test_driver_refusals_each_write_their_line(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    worker = h.worker(["default"], WorkerOptions(policy=AttemptPolicy(tries=3)))

    def refuse(*args: Any) -> bool:
        raise OxideError("read-only")

    h.driver.ack = refuse  # type: ignore[method-assign]
    h.driver.release = refuse  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, "oxide.worker"):
        assert worker.process(Delivery("q1", greet("a").encode())) is True
        assert worker.process(Delivery("q2", greet("b", listener=EXPLODE).encode())) is False
    assert outcome_lines(caplog, logging.ERROR) == [
        "queue=q1 could not acknowledge the job (read-only): it will be taken again",
        "queue=q2 could not release the job for a retry (read-only): it returns after its reservation expires",
    ]
    caplog.clear()
    h.driver.ack = lambda delivery: False  # type: ignore[method-assign]
    h.driver.release = lambda delivery, body, delay: False  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, "oxide.worker"):
        worker.process(Delivery("q3", greet("c").encode()))
        worker.process(Delivery("q4", greet("d", listener=EXPLODE).encode()))
    assert [m for m in outcome_lines(caplog, logging.WARNING) if "outcome=" not in m] == [
        "queue=q3 the job's reservation had expired before it was acknowledged: it may have run twice",
        "queue=q4 the job's reservation had expired: it is back in its queue already",
    ]


@pytest.mark.parametrize(
    ("receipt", "where"),
    [("a receipt", "it stays reserved and returns to its queue"), (None, "it is not in Redis")],
)
def test_a_failure_that_cannot_be_recorded_is_logged_whole(
    h: Harness, caplog: pytest.LogCaptureFixture, receipt: Any, where: str
) -> None:
    def store_down(record: Any) -> None:
        raise ConnectionError("database away")

    worker = h.worker(["default"], failer=store_down)
    body = greet("a", listener=EXPLODE, job_uuid="u-1")
    with caplog.at_level(logging.ERROR, "oxide.worker"):
        assert worker.process(Delivery("default", body.encode(), receipt)) is False
    [message] = outcome_lines(caplog, logging.ERROR)
    head, _, exception = message.partition("\nexception:\n")
    assert head.startswith(
        f"could not record failed job (ConnectionError: database away); {where}; the whole record follows: "
        f"uuid=u-1 connection=redis queue=default event=test.greeted listener={EXPLODE} failed_at="
    )
    failed_at, _, payload = head.partition(" failed_at=")[2].partition(" payload=")
    assert abs(datetime.now(UTC) - datetime.fromisoformat(failed_at)) < timedelta(minutes=1)  # when, in UTC
    assert payload == '{"name":"a"}'
    assert "RuntimeError: listener exploded on a" in exception
    assert worker.jobs_failed == 1


# -- the failure record ---------------------------------------------------------------------------------


def test_the_failure_record_keeps_the_whole_traceback_and_a_utc_time() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        error = exc
    record = failed_job_for("redis", Delivery("q", b"not a job"), None, error)
    assert record.exception == "".join(traceback.format_exception(error))
    assert record.payload == "not a job"
    assert record.failed_at.tzinfo is UTC


def test_a_body_that_is_not_utf8_is_kept_escaped_and_said_so() -> None:
    error = ValueError("bad")
    record = failed_job_for("redis", Delivery("q", b"\xffab"), None, error)
    assert record.payload == "\\xffab"
    assert record.exception == (
        "".join(traceback.format_exception(error))
        + "(the body is not valid UTF-8: bytes that are not are kept as \\xNN escapes)\n"
    )


# -- batching: what a take asks for, acknowledgements, settling ------------------------------------------


class RecordingTaker:
    """The real driver, with each take's limit and each settle step recorded; failures injectable."""

    def __init__(self, driver: RedisDriver) -> None:
        self.driver = driver
        self.limits: list[int] = []
        self.take_failures: list[BaseException] = []
        self.give_back_failure: BaseException | None = None
        self.consumable = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.driver, name)

    def take(self, queues: Any, timeout_secs: float, *, limit: int = 1, done: Any = ()) -> Any:
        self.limits.append(limit)
        if self.take_failures:
            raise self.take_failures.pop(0)
        return self.driver.take(queues, timeout_secs, limit=limit, done=done)

    def give_back(self, deliveries: Any) -> int:
        if self.give_back_failure is not None:
            raise self.give_back_failure
        return self.driver.give_back(deliveries)


def taker(h: Harness) -> RecordingTaker:
    return RecordingTaker(redis_driver_for(h.driver.client, poll_interval_secs=0.01))


def test_once_reserves_a_single_job_whatever_the_prefetch(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    t = taker(h)
    h.push("default", *(greet(f"j{n}") for n in range(3)))
    with caplog.at_level(logging.INFO, "oxide.worker"):
        assert h.worker(["default"], WorkerOptions(once=True, prefetch=5), driver=t).run() is StopReason.ONCE
    assert t.limits == [1, 0]  # the take, then the acknowledgement on the way out
    assert not any(m.startswith("gave back") for m in lines(caplog))
    assert h.remaining("default") == 2


def test_max_jobs_shrinks_each_take_to_what_is_left(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    t = taker(h)
    h.push("default", *(greet(f"j{n}") for n in range(5)))
    worker = h.worker(["default"], WorkerOptions(max_jobs=3, prefetch=2), driver=t)
    with caplog.at_level(logging.WARNING, "oxide.worker"):
        assert worker.run() is StopReason.MAX_JOBS
    assert lines(caplog) == []  # every acknowledgement found its reservation held: nothing to report
    assert t.limits == [2, 1, 0]
    assert h.recorder.seen == ["j0", "j1", "j2"]
    assert h.remaining("default") == 2


def test_acknowledgements_of_a_failed_take_ride_on_the_next_one(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    t = taker(h)
    h.push("default", greet("a"), greet("b"))
    # The second take carries a's acknowledgement, and its reply is lost.
    h.recorder.on_handle = lambda event: event.name == "a" and t.take_failures.append(ConnectionUnavailable("lost"))
    with caplog.at_level(logging.WARNING, "oxide.worker"):
        assert h.worker(["default"], WorkerOptions(max_jobs=2), driver=t).run() is StopReason.MAX_JOBS
    assert h.recorder.seen == ["a", "b"]
    assert lines(caplog)[0] == "connection=redis unavailable: lost; retrying in 0.1s (attempt 1)"
    assert reserved_count(h, "default") == 0  # a's acknowledgement was sent again with the next take


def test_an_acknowledgement_that_finds_the_reservation_gone_is_reported(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    t = taker(h)
    client = h.driver.client
    h.push("default", greet("a"), greet("b"))

    def drop_reservation(event: Greeted) -> None:
        if event.name == "a":
            client.delete(keys_of("default")[1])  # as if it had expired and another worker had it

    h.recorder.on_handle = drop_reservation
    with caplog.at_level(logging.WARNING, "oxide.worker"):
        assert h.worker(["default"], WorkerOptions(max_jobs=2), driver=t).run() is StopReason.MAX_JOBS
    assert lines(caplog) == [
        "queue=default the job's reservation had expired before it was acknowledged: it may have run twice"
    ]


def test_settling_gives_back_the_unstarted_jobs_and_says_how_many(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    t = taker(h)
    h.push("default", *(greet(f"j{n}") for n in range(4)))
    worker = h.worker(["default"], WorkerOptions(prefetch=4), driver=t)
    h.recorder.on_handle = lambda event: worker.stop()
    with caplog.at_level(logging.INFO, "oxide.worker"):
        assert worker.run() is StopReason.INTERRUPTED
    assert "gave back 3 prefetched job(s) not started, to the front of their queues" in lines(caplog)
    assert reserved_count(h, "default") == 0


def test_settling_that_fails_says_what_returns_by_itself(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    t = taker(h)
    t.give_back_failure = ConnectionUnavailable("gone")
    h.push("default", *(greet(f"j{n}") for n in range(3)))
    worker = h.worker(["default"], WorkerOptions(prefetch=3), driver=t)
    h.recorder.on_handle = lambda event: worker.stop()
    with caplog.at_level(logging.ERROR, "oxide.worker"):
        assert worker.run() is StopReason.INTERRUPTED
    assert lines(caplog) == [
        "could not settle 1 finished and 2 unstarted job(s) (gone): they return to their queues after "
        "the visibility timeout"
    ]


@pytest.mark.parametrize(
    ("visibility", "waited", "refreshed"),
    [(90.0, 29.0, False), (90.0, 30.0, True), (0.9, 0.5, True)],
)
def test_a_prefetched_job_that_waited_a_third_of_the_visibility_timeout_is_extended_before_it_runs(
    h: Harness, visibility: float, waited: float, refreshed: bool
) -> None:
    connections = h.app.config.connections
    connections["redis"] = dataclasses.replace(connections["redis"], visibility_timeout_secs=visibility)
    driver = clocked_driver(h, visibility_timeout_secs=visibility)
    client = h.driver.client
    h.push("default", greet("j0"), greet("j1"))
    start = h.clock.now
    deadlines: list[float] = []

    def note(event: Greeted) -> None:
        if event.name == "j0":
            h.clock.advance(waited)
        else:
            reserved = client.zrange(keys_of("default")[1], 0, -1, withscores=True)
            deadlines.extend(score / 1000 for member, score in reserved if b'"name":"j1"' in member)

    h.recorder.on_handle = note
    worker = h.worker(["default"], WorkerOptions(prefetch=2, max_jobs=2), driver=driver)
    assert worker.run() is StopReason.MAX_JOBS
    assert h.recorder.seen == ["j0", "j1"]
    expected = start + visibility + (waited if refreshed else 0.0)
    assert deadlines == [pytest.approx(expected, abs=0.002)]


def test_a_prefetched_job_whose_refresh_fails_or_finds_it_expired_says_so_exactly(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    driver = clocked_driver(h)
    h.push("default", greet("j0"), greet("j1"), greet("j2"))
    answers: list[bool | Exception] = [OxideError("server busy"), False]

    def extend(delivery: Delivery) -> bool:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    driver.extend = extend  # type: ignore[method-assign]
    h.recorder.on_handle = lambda event: h.clock.advance(30.0)  # each job makes the next one wait a refresh
    worker = h.worker(["default"], WorkerOptions(prefetch=3, max_jobs=3), driver=driver)
    with caplog.at_level(logging.WARNING, "oxide.worker"):
        for _ in range(3):
            worker._cycle()
    assert h.recorder.seen == ["j0", "j1"]  # j1 ran without its refresh; j2, expired, did not
    assert lines(caplog) == [
        "queue=default could not extend a prefetched job's reservation (server busy): running it",
        "queue=default a prefetched job's reservation expired before it started: it is back in its queue, "
        "not run here (lower --prefetch, or raise visibility_timeout_secs)",
    ]


def test_a_job_stuck_past_its_timeout_and_grace_ends_the_process(h: Harness) -> None:
    worker = h.worker(["default"], WorkerOptions(policy=AttemptPolicy(timeout_secs=1000.0)))
    exits: list[int] = []
    worker._supervisor._exit = exits.append  # the process's exit, recorded instead

    def stuck(event: Greeted) -> None:
        h.clock.advance(1000.0 + 500.0 + 1.0)  # past the timeout and its grace, on the worker's clock
        worker._supervisor.check()  # the supervisor thread's tick, run here

    h.recorder.on_handle = stuck
    h.push("default", greet("a"))
    delivery = h.driver.pop(["default"], 1.0)
    assert delivery is not None
    worker.process(delivery)
    assert exits == [EXIT_STUCK]
