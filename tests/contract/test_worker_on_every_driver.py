"""The worker's behaviour on every driver: retries, exhausted tries, poison messages, a stop mid-job.

The driver contract suite beside this file checks the drivers alone; here the real
:class:`~oxide.worker.Worker` runs on each of them (fakeredis, Redis, the database driver on
SQLite, PostgreSQL and MariaDB), so what a user sees does not depend on the backend. A stop
asked for mid-job is what SIGINT/SIGTERM do (their handler only sets the same flag; the
signal itself is tested on real processes in tests/integration/test_worker_signals.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from oxide import App, Event, Mode
from oxide.attempts import AttemptPolicy
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


def setup(dut: DriverUnderTest, listener: Flaky, tries: int) -> tuple[App, str, list[FailedJob], Any]:
    app = App(config=make_config())
    app.listen(Charged, listener, Mode.queue("redis").tries(tries))
    [queue] = dut.fresh_queues("billing")
    failed: list[FailedJob] = []

    def worker() -> Worker:
        return Worker(
            app,
            "redis",
            [queue],
            WorkerOptions(stop_when_empty=True, handle_signals=False, policy=AttemptPolicy()),
            failer=failed.append,
            driver=dut.driver,
            sleep=lambda _s: None,
        )

    return app, queue, failed, worker


def job(order: int) -> str:
    return Job(Charged.event_name, LISTENER, {"order": order}, uuid=f"order-{order}").to_json()


def test_a_listener_that_fails_then_succeeds_is_retried_until_done(driver_under_test: DriverUnderTest) -> None:
    listener = Flaky(failures=2)
    _app, queue, failed, worker = setup(driver_under_test, listener, tries=3)
    driver_under_test.driver.push(queue, job(1))
    assert worker().run() is StopReason.QUEUE_EMPTY
    assert listener.runs == [1, 1, 1]
    assert failed == []
    assert driver_under_test.driver.size(queue) == 0
    assert_nothing_comes_back(driver_under_test, worker, listener)


def test_tries_used_up_make_exactly_one_failed_job(driver_under_test: DriverUnderTest) -> None:
    listener = Flaky(failures=99)
    _app, queue, failed, worker = setup(driver_under_test, listener, tries=2)
    driver_under_test.driver.push(queue, job(2))
    assert worker().run() is StopReason.QUEUE_EMPTY
    assert listener.runs == [2, 2]
    assert [(f.uuid, f.queue, f.payload) for f in failed] == [("order-2", queue, '{"order":2}')]
    assert "card declined for order 2" in failed[0].exception
    assert driver_under_test.driver.size(queue) == 0
    assert_nothing_comes_back(driver_under_test, worker, listener)
    assert len(failed) == 1


def test_a_poison_message_fails_at_once_and_the_next_job_runs(driver_under_test: DriverUnderTest) -> None:
    listener = Flaky(failures=0)
    _app, queue, failed, worker = setup(driver_under_test, listener, tries=5)
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


def assert_nothing_comes_back(dut: DriverUnderTest, worker: Any, listener: Flaky) -> None:
    """Every job was acknowledged: past any visibility deadline, no reservation returns to the queue."""
    runs = list(listener.runs)
    dut.clock.advance(dut.visibility_secs + 1)
    assert worker().run() is StopReason.QUEUE_EMPTY
    assert listener.runs == runs
