"""Retries, exhausted tries and the driver refusing an ack or a release, on fakeredis with a fake clock."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from oxide import OxideError
from oxide.attempts import AttemptPolicy
from oxide.drivers import Delivery
from oxide.wire import Job
from oxide.worker import StopReason, WorkerOptions
from tests.worker_support import EXPLODE, Greeted, Harness, greet, make_harness


@pytest.fixture
def h(fake_redis: Any) -> Harness:
    return make_harness(fake_redis)


def tries(n: int, backoff_secs: float = 0.0) -> WorkerOptions:
    return WorkerOptions(stop_when_empty=True, policy=AttemptPolicy(tries=n, backoff_secs=backoff_secs))


def fail_first(h: Harness, times: int) -> list[str]:
    """Make the Recorder raise on its first ``times`` runs; returns the names it raised on."""
    raised: list[str] = []

    def maybe_raise(event: Greeted) -> None:
        if len(raised) < times:
            raised.append(event.name)
            raise RuntimeError(f"flaky on {event.name}")

    h.recorder.on_handle = maybe_raise
    return raised


def test_a_failed_run_is_retried_and_the_retry_can_succeed(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    raised = fail_first(h, 1)
    h.push("default", greet("a"))
    with caplog.at_level(logging.WARNING, "oxide.worker"):
        assert h.worker(["default"], tries(3)).run() is StopReason.QUEUE_EMPTY
    assert raised == ["a"]
    assert h.recorder.seen == ["a"]
    assert h.failed == []
    assert "outcome=retry attempt=1/3" in caplog.text
    assert "error=RuntimeError: flaky on a" in caplog.text
    # The second run read attempts=1 back from the released body.
    assert [Job.from_json(d.body).attempts for d in h.driver.taken] == [None, 1]


def test_the_last_allowed_failure_is_recorded_not_retried(h: Harness) -> None:
    h.push("default", greet("a", listener=EXPLODE))
    assert h.worker(["default"], tries(2)).run() is StopReason.QUEUE_EMPTY
    assert len(h.driver.taken) == 2
    assert len(h.failed) == 1
    assert "listener exploded on a" in h.failed[0].exception
    assert h.remaining("default") == 0


def test_one_try_means_no_retry(h: Harness) -> None:
    h.push("default", greet("a", listener=EXPLODE))
    h.worker(["default"], tries(1)).run()
    assert len(h.driver.taken) == 1
    assert len(h.failed) == 1


def test_a_job_already_out_of_tries_fails_without_running(h: Harness) -> None:
    body = Job.from_json(greet("a")).replace(attempts=2).to_json()
    h.push("default", body)
    h.worker(["default"], tries(2)).run()
    assert h.recorder.seen == []
    [failed] = h.failed
    assert "MaxAttemptsExceeded" in failed.exception
    assert "taken 2 time(s), its listener allows 2" in failed.exception
    assert "0 of those run(s) never finished" in failed.exception


def test_runs_lost_with_a_dead_worker_count_as_tries(h: Harness) -> None:
    h.push("default", greet("a"))
    worker = h.worker(["default"], tries(2))
    delivery = h.driver.pop(["default"], 1.0)
    assert delivery is not None
    lost_twice = Delivery(delivery.queue, delivery.body, delivery.receipt, expirations=2)
    assert worker.process(lost_twice) is False
    assert h.recorder.seen == []
    assert "2 of those run(s) never finished" in h.failed[0].exception


def test_the_retry_waits_the_backoff(h: Harness) -> None:
    fail_first(h, 1)
    releases: list[float] = []
    release = h.driver.release

    def recording_release(delivery: Delivery, body: str, delay_secs: float) -> bool:
        releases.append(delay_secs)
        return release(delivery, body, delay_secs)

    h.driver.release = recording_release  # type: ignore[method-assign]
    h.push("default", greet("a"))
    h.worker(["default"], tries(3, backoff_secs=2.0)).run()
    [delay] = releases
    assert 2.0 <= delay <= 2.5


def test_an_ack_the_driver_refuses_is_logged_and_the_worker_goes_on(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(delivery: Delivery) -> bool:
        raise OxideError("redis is read-only")

    h.driver.ack = refuse  # type: ignore[method-assign]
    h.push("default", greet("a"), greet("b"))
    with caplog.at_level(logging.ERROR, "oxide.worker"):
        assert h.worker(["default"]).run() is StopReason.QUEUE_EMPTY
    assert h.recorder.seen == ["a", "b"]
    assert "could not acknowledge the job (redis is read-only): it will be taken again" in caplog.text


def test_an_expired_reservation_at_ack_is_reported(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    h.driver.ack = lambda delivery: False  # type: ignore[method-assign]
    h.push("default", greet("a"))
    with caplog.at_level(logging.WARNING, "oxide.worker"):
        h.worker(["default"]).run()
    assert "reservation had expired before it was acknowledged: it may have run twice" in caplog.text


def test_a_release_the_driver_refuses_leaves_the_job_to_expire(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    fail_first(h, 1)

    def refuse(delivery: Delivery, body: str, delay_secs: float) -> bool:
        raise OxideError("redis is read-only")

    h.driver.release = refuse  # type: ignore[method-assign]
    h.push("default", greet("a"))
    with caplog.at_level(logging.ERROR, "oxide.worker"):
        h.worker(["default"], tries(3)).run()
    assert "could not release the job for a retry (redis is read-only)" in caplog.text
    assert h.failed == []
    assert h.remaining("default") == 0  # still reserved: it comes back when the reservation expires


def test_a_release_after_expiry_is_reported(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    fail_first(h, 1)
    h.driver.release = lambda delivery, body, delay_secs: False  # type: ignore[method-assign]
    h.push("default", greet("a"))
    with caplog.at_level(logging.WARNING, "oxide.worker"):
        h.worker(["default"], tries(3)).run()
    assert "the job's reservation had expired: it is back in its queue already" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"policy": AttemptPolicy(tries=0)}, "policy.tries: expected a whole number >= 1, got 0"),
        ({"policy": AttemptPolicy(tries=1.5)}, "policy.tries: expected a whole number >= 1, got 1.5"),  # type: ignore[arg-type]
        ({"policy": AttemptPolicy(tries=True)}, "policy.tries: expected a whole number >= 1, got True"),
        ({"policy": AttemptPolicy(backoff_secs=-1.0)}, "policy.backoff_secs: expected seconds >= 0, got -1.0"),
        ({"policy": AttemptPolicy(backoff_secs=float("inf"))}, "policy.backoff_secs: expected seconds >= 0, got inf"),
        ({"policy": AttemptPolicy(timeout_secs=0.0)}, "policy.timeout_secs: expected seconds > 0, got 0.0"),
        ({"policy": AttemptPolicy(timeout_secs=float("nan"))}, "policy.timeout_secs: expected seconds > 0, got nan"),
        ({"max_jobs": True}, "max_jobs: expected a whole number >= 1 or None, got True"),
        ({"reconnect_initial_secs": 0.0}, "0 < reconnect_initial_secs <= reconnect_max_secs"),
        (
            {"reconnect_initial_secs": 5.0, "reconnect_max_secs": 1.0},
            "0 < reconnect_initial_secs <= reconnect_max_secs",
        ),
    ],
)
def test_bad_options_are_refused_naming_the_field_and_value(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(OxideError, match=re.escape(message)):
        WorkerOptions(**kwargs)


def test_edge_options_are_accepted() -> None:
    WorkerOptions(max_jobs=1, max_time_secs=0.001, policy=AttemptPolicy(tries=1, backoff_secs=0.0, timeout_secs=0.001))
    WorkerOptions(reconnect_initial_secs=2.0, reconnect_max_secs=2.0)


def test_a_listener_that_exits_is_recorded_first_then_the_exit_is_honoured(h: Harness) -> None:
    def exit_now(event: Greeted) -> None:
        raise SystemExit(3)

    h.recorder.on_handle = exit_now
    h.push("default", greet("a"), greet("b"))
    with pytest.raises(SystemExit) as info:
        h.worker(["default"], tries(3)).run()
    assert info.value.code == 3
    [failed] = h.failed
    assert "SystemExit: 3" in failed.exception
    assert h.remaining("default") == 1  # b was not taken


def test_a_driver_that_fails_to_close_during_an_outage_does_not_stop_the_reconnect(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    from oxide import ConnectionUnavailable

    def close_fails() -> None:
        raise OSError("socket already gone")

    h.driver.close = close_fails  # type: ignore[method-assign]
    h.driver.failures = [ConnectionUnavailable("down")]
    h.push("default", greet("a"))
    with caplog.at_level(logging.DEBUG, "oxide.worker"):
        assert h.worker(["default"]).run() is StopReason.QUEUE_EMPTY
    assert h.recorder.seen == ["a"]
    assert "closing connection=redis failed: socket already gone" in caplog.text


def test_a_failure_record_keeps_the_body_when_the_payload_cannot_be_written_as_json() -> None:
    from oxide.worker import failed_job_for

    body = b'{"event_name":"e","listener_type":"l","payload":1}'
    job = Job("e", "l", {1, 2}, uuid="u")  # a set: only a hand-built Job can hold one
    record = failed_job_for("redis", Delivery("default", body), job, RuntimeError("boom"))
    assert record.payload == body.decode()
    assert (record.uuid, record.event_name, record.listener_type) == ("u", "e", "l")
