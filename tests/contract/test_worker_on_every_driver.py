"""The worker's behaviour on every driver: retries, exhausted tries, poison messages, a stop mid-job.

The driver contract suite beside this file checks the drivers alone; here the real
:class:`~oxide.worker.Worker` runs on each of them (fakeredis, Redis, the database driver on
SQLite, PostgreSQL and MariaDB), so what a user sees does not depend on the backend. A stop
asked for mid-job is what SIGINT/SIGTERM do (their handler only sets the same flag; the
signal itself is tested on real processes in tests/integration/test_worker_signals.py).

Every test runs with one slot (the listener in the worker's thread) and with eight (listeners on
threads, the take loop asking for as many jobs as there are free slots).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from oxide import App, Event, Mode
from oxide.attempts import AttemptPolicy
from oxide.events import listener_type_of
from oxide.failed import FailedJob
from oxide.wire import Job
from oxide.worker import StopReason, Worker, WorkerOptions
from tests.contract.conftest import DriverUnderTest
from tests.worker_support import make_config


@dataclass
class Charged(Event):
    event_name = "contract.charged"
    order: int


@dataclass
class Flaky:
    """Fails its first ``failures`` runs of each order, then succeeds; remembers every run."""

    failures: int
    runs: list[int] = field(default_factory=list)
    on_run: Any = None

    def handle(self, event: Charged) -> None:
        self.runs.append(event.order)
        if self.on_run is not None:
            self.on_run(event)
        if self.runs.count(event.order) <= self.failures:
            raise RuntimeError(f"card declined for order {event.order}")


LISTENER = f"{Flaky.__module__}.{Flaky.__qualname__}"


@pytest.fixture(params=[1, 8], ids=["1-slot", "8-slots"])
def slots(request: pytest.FixtureRequest) -> int:
    return int(request.param)


def setup(dut: DriverUnderTest, listener: Flaky, tries: int, slots: int = 1) -> tuple[App, str, list[FailedJob], Any]:
    app = App(config=make_config())
    app.listen(Charged, listener, Mode.queue("redis").tries(tries))
    [queue] = dut.fresh_queues("billing")
    failed: list[FailedJob] = []

    def worker() -> Worker:
        return Worker(
            app,
            "redis",
            [queue],
            WorkerOptions(stop_when_empty=True, handle_signals=False, policy=AttemptPolicy(), concurrency=slots),
            failer=failed.append,
            driver=dut.driver,
            sleep=lambda _s: None,
        )

    return app, queue, failed, worker


def job(order: int) -> str:
    return Job(Charged.event_name, LISTENER, {"order": order}, uuid=f"order-{order}").to_json()


def test_a_listener_that_fails_then_succeeds_is_retried_until_done(
    driver_under_test: DriverUnderTest, slots: int
) -> None:
    listener = Flaky(failures=2)
    _app, queue, failed, worker = setup(driver_under_test, listener, tries=3, slots=slots)
    driver_under_test.driver.push(queue, job(1))
    assert worker().run() is StopReason.QUEUE_EMPTY
    assert listener.runs == [1, 1, 1]
    assert failed == []
    assert driver_under_test.driver.size(queue) == 0
    assert_nothing_comes_back(driver_under_test, worker, listener)


def test_tries_used_up_make_exactly_one_failed_job(driver_under_test: DriverUnderTest, slots: int) -> None:
    listener = Flaky(failures=99)
    _app, queue, failed, worker = setup(driver_under_test, listener, tries=2, slots=slots)
    driver_under_test.driver.push(queue, job(2))
    assert worker().run() is StopReason.QUEUE_EMPTY
    assert listener.runs == [2, 2]
    assert [(f.uuid, f.queue, f.payload) for f in failed] == [("order-2", queue, '{"order":2}')]
    assert "card declined for order 2" in failed[0].exception
    assert driver_under_test.driver.size(queue) == 0
    assert_nothing_comes_back(driver_under_test, worker, listener)
    assert len(failed) == 1


def test_a_poison_message_fails_at_once_and_the_next_job_runs(driver_under_test: DriverUnderTest, slots: int) -> None:
    listener = Flaky(failures=0)
    _app, queue, failed, worker = setup(driver_under_test, listener, tries=5, slots=slots)
    driver_under_test.driver.push_many(queue, ["{not json", job(3)])
    assert worker().run() is StopReason.QUEUE_EMPTY
    assert listener.runs == [3]
    assert [(f.payload, f.event_name, f.listener_type) for f in failed] == [("{not json", "", "")]
    assert "JobDecodeError" in failed[0].exception


def test_a_stop_mid_job_finishes_it_and_leaves_the_rest_queued(driver_under_test: DriverUnderTest) -> None:
    listener = Flaky(failures=0)
    _app, queue, failed, worker = setup(driver_under_test, listener, tries=1)
    driver_under_test.driver.push_many(queue, [job(4), job(5), job(6)])
    running = worker()
    listener.on_run = lambda event: running.stop()  # the flag SIGTERM's handler sets
    assert running.run() is StopReason.INTERRUPTED
    assert listener.runs == [4]
    assert failed == []
    # The job in hand was acknowledged; the others wait, untouched, for the next worker.
    assert driver_under_test.driver.size(queue) == 2
    assert worker().run() is StopReason.QUEUE_EMPTY
    assert listener.runs == [4, 5, 6]
    assert_nothing_comes_back(driver_under_test, worker, listener)


@dataclass
class Overruns:
    """Loops past any timeout until interrupted (in Python, so that the interruption can land)."""

    runs: list[int] = field(default_factory=list)

    def handle(self, event: Charged) -> None:
        self.runs.append(event.order)
        while True:
            time.sleep(0.005)


def test_a_listener_past_its_timeout_is_interrupted_retried_and_recorded(
    driver_under_test: DriverUnderTest, slots: int
) -> None:
    listener = Overruns()
    app = App(config=make_config())
    app.listen(Charged, listener, Mode.queue("redis").tries(2).timeout(0.1))
    [queue] = driver_under_test.fresh_queues("slow")
    failed: list[FailedJob] = []
    driver_under_test.driver.push(queue, Job(Charged.event_name, listener_type_of(listener), {"order": 7}).to_json())
    worker = Worker(
        app,
        "redis",
        [queue],
        WorkerOptions(stop_when_empty=True, handle_signals=False, concurrency=slots),
        failer=failed.append,
        driver=driver_under_test.driver,
        sleep=lambda _s: None,
    )
    assert worker.run() is StopReason.QUEUE_EMPTY
    assert listener.runs == [7, 7]
    (record,) = failed
    assert "JobTimedOut: the listener ran longer than its 0.1s timeout" in record.exception
    assert driver_under_test.driver.size(queue) == 0


def test_a_stop_with_eight_slots_finishes_every_job_taken_and_leaves_the_rest_queued(
    driver_under_test: DriverUnderTest,
) -> None:
    listener = Flaky(failures=0)
    _app, queue, failed, worker = setup(driver_under_test, listener, tries=1, slots=8)
    driver_under_test.driver.push_many(queue, [job(n) for n in range(10, 16)])
    running = worker()
    listener.on_run = lambda event: running.stop()  # the flag SIGTERM's handler sets
    assert running.run() is StopReason.INTERRUPTED
    # Whatever had been taken when the stop came ran to its end, once; the others are still queued.
    ran = list(listener.runs)
    assert ran
    assert len(set(ran)) == len(ran)
    assert failed == []
    assert driver_under_test.driver.size(queue) == 6 - len(ran)
    assert worker().run() is StopReason.QUEUE_EMPTY
    assert sorted(listener.runs) == list(range(10, 16))
    assert_nothing_comes_back(driver_under_test, worker, listener)


def assert_nothing_comes_back(dut: DriverUnderTest, worker: Any, listener: Flaky) -> None:
    """Every job was acknowledged: past any visibility deadline, no reservation returns to the queue."""
    runs = list(listener.runs)
    dut.clock.advance(dut.visibility_secs + 1)
    assert worker().run() is StopReason.QUEUE_EMPTY
    assert listener.runs == runs
