"""Signals in-process: a real SIGINT/SIGTERM sent to this process at the worst moments loses nothing."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from oxide.drivers import Delivery
from oxide.drivers.redis import queue_key
from oxide.worker import StopReason, WorkerOptions
from tests.worker_support import Harness, greet, make_harness


class SignalEscaped(Exception):
    """Raised by the guard handlers: the worker's own handlers were not in place."""


@pytest.fixture
def guarded() -> Iterator[dict[int, Any]]:
    """While the test runs, SIGINT/SIGTERM outside the worker's handlers raise instead of killing pytest."""

    def guard(signum: int, frame: Any) -> None:
        raise SignalEscaped(signal.Signals(signum).name)

    previous = {s: signal.signal(s, guard) for s in (signal.SIGINT, signal.SIGTERM)}
    yield dict.fromkeys(previous, guard)
    for signum, handler in previous.items():
        signal.signal(signum, handler)


@pytest.fixture
def h(fake_redis: Any) -> Harness:
    return make_harness(fake_redis)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_a_listener_finishes_that_job_then_stops(
    h: Harness, guarded: dict[int, Any], signum: signal.Signals
) -> None:
    h.push("default", greet("first"), greet("second"))
    h.recorder.on_handle = lambda event: os.kill(os.getpid(), signum)
    worker = h.worker(["default"], WorkerOptions(max_time_secs=60.0))
    assert worker.run() is StopReason.INTERRUPTED
    # The listener went on past the signal and recorded its event; nothing else was taken.
    assert h.recorder.seen == ["first"]
    assert h.failed == []
    assert h.remaining("default") == 1
    assert signal.getsignal(signum) is guarded[signum]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_while_the_take_reply_is_being_read_loses_nothing(
    h: Harness, guarded: dict[int, Any], signum: signal.Signals
) -> None:
    # The job has left Redis and exists only in this reply when the signal lands: were the handler
    # to raise here (as Python's default SIGINT handler does), the job would be gone.
    pop = h.driver.pop

    def pop_then_signal(queues: Any, timeout_secs: float) -> Delivery | None:
        delivery = pop(queues, timeout_secs)
        os.kill(os.getpid(), signum)
        return delivery

    h.driver.pop = pop_then_signal  # type: ignore[method-assign]
    h.push("default", greet("only"), greet("left"))
    assert h.worker(["default"], WorkerOptions(max_time_secs=60.0)).run() is StopReason.INTERRUPTED
    assert h.recorder.seen == ["only"]
    assert h.remaining("default") == 1


def test_signal_while_idle_stops_after_the_current_take(h: Harness, guarded: dict[int, Any]) -> None:
    pop = h.driver.pop

    def empty_take_then_signal(queues: Any, timeout_secs: float) -> Delivery | None:
        os.kill(os.getpid(), signal.SIGTERM)
        return pop(queues, timeout_secs)

    h.driver.pop = empty_take_then_signal  # type: ignore[method-assign]
    assert h.worker(["default"], WorkerOptions(max_time_secs=60.0)).run() is StopReason.INTERRUPTED
    assert len(h.driver.waits) == 1


def test_signal_during_an_async_listener(h: Harness, guarded: dict[int, Any]) -> None:
    from oxide.wire import Job
    from tests.worker_support import ASYNC_RECORDER, AsyncRecorder

    AsyncRecorder.loops.clear()
    h.recorder.on_handle = None
    body = Job("test.parted", ASYNC_RECORDER, {"name": "p"}).to_json()
    h.push("default", body, body)
    pop = h.driver.pop

    def signal_after_take(queues: Any, timeout_secs: float) -> Delivery | None:
        delivery = pop(queues, timeout_secs)
        os.kill(os.getpid(), signal.SIGINT)
        return delivery

    h.driver.pop = signal_after_take  # type: ignore[method-assign]
    assert h.worker(["default"], WorkerOptions(max_time_secs=60.0)).run() is StopReason.INTERRUPTED
    # asyncio.Runner would turn SIGINT into a cancelled task if it found the default handler installed.
    assert len(AsyncRecorder.loops) == 1
    assert h.failed == []


def test_a_second_signal_cuts_the_job_short_and_gives_it_back_uncounted(h: Harness, guarded: dict[int, Any]) -> None:
    def two_signals(event: Any) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)  # the second: the listener is interrupted right here

    h.recorder.on_handle = two_signals
    body = greet("a")
    h.push("default", body)
    assert h.worker(["default"], WorkerOptions(max_time_secs=60.0)).run() is StopReason.INTERRUPTED
    assert h.recorder.seen == []  # it never got past the second signal
    assert h.failed == []
    # Back at the front of its queue as it was taken: no attempt counted, nothing lost.
    assert h.driver.client.lrange(queue_key("default"), 0, -1) == [body.encode()]


def test_with_one_slot_the_stop_timeout_interrupts_the_job_in_hand_and_gives_it_back(
    h: Harness, guarded: dict[int, Any]
) -> None:
    # The listener runs in this very thread: only a signal reaches it, and the supervisor's thread
    # sends one when the stop timeout has passed (measured on the worker's clock, moved here).
    interrupted: list[BaseException] = []

    def long_job(event: Any) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # the stop; the job goes on
        try:
            while True:
                h.clock.advance(0.05)
                time.sleep(0.005)
        except BaseException as exc:
            interrupted.append(exc)
            raise

    h.recorder.on_handle = long_job
    body = greet("long")
    h.push("default", body)
    worker = h.worker(["default"], WorkerOptions(max_time_secs=600.0, stop_timeout_secs=0.5))
    assert worker.run() is StopReason.INTERRUPTED
    assert [type(e).__name__ for e in interrupted] == ["Abandoned"]
    assert h.recorder.seen == []
    assert h.failed == []
    assert h.driver.client.lrange(queue_key("default"), 0, -1) == [body.encode()]


def test_handlers_are_restored_even_when_a_listener_raises_system_exit(h: Harness, guarded: dict[int, Any]) -> None:
    def leave(event: Any) -> None:
        raise SystemExit(3)

    h.recorder.on_handle = leave
    h.push("default", greet("a"))
    with pytest.raises(SystemExit):
        h.worker(["default"], WorkerOptions(max_time_secs=60.0)).run()
    (record,) = h.failed  # recorded before the exit is honoured
    assert "SystemExit: 3" in record.exception
    assert signal.getsignal(signal.SIGINT) is guarded[signal.SIGINT]
    assert signal.getsignal(signal.SIGTERM) is guarded[signal.SIGTERM]


def test_no_handlers_when_asked_not_to(h: Harness, guarded: dict[int, Any]) -> None:
    seen: list[Any] = []
    h.recorder.on_handle = lambda event: seen.append(signal.getsignal(signal.SIGTERM))
    h.push("default", greet("a"))
    h.worker(["default"], WorkerOptions(stop_when_empty=True, handle_signals=False)).run()
    assert seen == [guarded[signal.SIGTERM]]


def test_a_worker_in_another_thread_runs_without_handlers_and_stops_on_request(h: Harness) -> None:
    worker = h.worker(["default"], WorkerOptions(max_time_secs=60.0))
    h.push("default", greet("a"))
    h.recorder.on_handle = lambda event: worker.stop()
    outcome: list[StopReason] = []
    thread = threading.Thread(target=lambda: outcome.append(worker.run()))
    thread.start()
    thread.join(timeout=30)
    assert outcome == [StopReason.INTERRUPTED]
    assert h.recorder.seen == ["a"]
