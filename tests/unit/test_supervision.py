"""The supervisor's heartbeats and stuck-job exit, and the soft timeout, on a fake clock.

Each supervisor is closed before it watches anything, so its thread ends at
once and only the test calls ``check()``: what happens at a given instant is
decided by the fake clock, never by scheduling.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from oxide.drivers import Delivery
from oxide.errors import JobTimedOut
from oxide.supervision import EXIT_STUCK, Supervisor, soft_timeout, stuck_grace_secs

DELIVERY = Delivery(queue="default", body=b"{}")


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class ExtendingDriver:
    """Only what the supervisor calls: ``extend``, answering from a script."""

    def __init__(self, *answers: bool | Exception) -> None:
        self.answers = list(answers)
        self.extended: list[Delivery] = []

    def extend(self, delivery: Delivery) -> bool:
        self.extended.append(delivery)
        answer = self.answers.pop(0) if self.answers else True
        if isinstance(answer, Exception):
            raise answer
        return answer


class Harness:
    def __init__(self, driver: ExtendingDriver, visibility_timeout_secs: float) -> None:
        self.clock = Clock()
        self.exits: list[int] = []
        self.driver = driver
        self.supervisor = Supervisor(
            driver,  # type: ignore[arg-type]  # the supervisor only calls extend()
            visibility_timeout_secs,
            clock=self.clock,
            exit_process=self.exits.append,
        )
        self.supervisor.close()

    def at(self, offset_secs: float) -> None:
        """Move the clock to ``offset_secs`` after the job started and look once."""
        self.clock.now = 1000.0 + offset_secs
        self.supervisor.check()


@pytest.fixture
def heartbeat() -> Iterator[Harness]:
    harness = Harness(ExtendingDriver(), visibility_timeout_secs=30.0)
    with harness.supervisor.watching(DELIVERY, timeout_secs=None):
        yield harness


def test_reservation_is_extended_every_third_of_the_visibility_timeout(heartbeat: Harness) -> None:
    heartbeat.at(9.99)
    assert heartbeat.driver.extended == []
    heartbeat.at(10.0)
    assert heartbeat.driver.extended == [DELIVERY]
    heartbeat.at(19.99)
    assert len(heartbeat.driver.extended) == 1
    heartbeat.at(20.0)
    assert len(heartbeat.driver.extended) == 2
    assert heartbeat.exits == []


def test_nothing_is_extended_once_the_job_is_done() -> None:
    harness = Harness(ExtendingDriver(), visibility_timeout_secs=30.0)
    with harness.supervisor.watching(DELIVERY, timeout_secs=None):
        pass
    harness.at(100.0)
    assert harness.driver.extended == []


def test_a_lost_reservation_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    harness = Harness(ExtendingDriver(False), visibility_timeout_secs=3.0)
    with caplog.at_level(logging.WARNING, "oxide.worker"), harness.supervisor.watching(DELIVERY, None):
        harness.at(1.0)
    assert "had expired before it was extended" in caplog.text
    assert "queue=default" in caplog.text


def test_a_held_reservation_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    harness = Harness(ExtendingDriver(True), visibility_timeout_secs=3.0)
    with caplog.at_level(logging.DEBUG, "oxide.worker"), harness.supervisor.watching(DELIVERY, None):
        harness.at(1.0)
    assert harness.driver.extended == [DELIVERY]
    assert caplog.records == []


def test_a_failed_extend_is_logged_and_retried_at_the_next_beat(caplog: pytest.LogCaptureFixture) -> None:
    harness = Harness(ExtendingDriver(ConnectionError("redis went away"), True), visibility_timeout_secs=3.0)
    with caplog.at_level(logging.WARNING, "oxide.worker"), harness.supervisor.watching(DELIVERY, None):
        harness.at(1.0)
        assert "could not extend the reservation: redis went away" in caplog.text
        harness.at(2.0)
    assert harness.driver.extended == [DELIVERY, DELIVERY]
    assert harness.exits == []


def test_no_heartbeat_without_a_visibility_timeout() -> None:
    harness = Harness(ExtendingDriver(), visibility_timeout_secs=0.0)
    with harness.supervisor.watching(DELIVERY, timeout_secs=None):
        harness.at(10_000.0)
    assert harness.driver.extended == []


@pytest.mark.parametrize(("timeout_secs", "grace_secs"), [(1.0, 2.0), (4.0, 2.0), (10.0, 5.0), (60.0, 30.0)])
def test_grace_is_half_the_timeout_but_at_least_two_seconds(timeout_secs: float, grace_secs: float) -> None:
    assert stuck_grace_secs(timeout_secs) == grace_secs


def test_a_job_stuck_past_timeout_and_grace_exits_the_process(caplog: pytest.LogCaptureFixture) -> None:
    harness = Harness(ExtendingDriver(), visibility_timeout_secs=0.0)
    with caplog.at_level(logging.CRITICAL, "oxide.worker"), harness.supervisor.watching(DELIVERY, timeout_secs=10.0):
        harness.at(15.0)  # timeout + grace exactly: still unwinding
        assert harness.exits == []
        harness.at(15.5)
        assert harness.exits == [EXIT_STUCK]
    assert EXIT_STUCK == 75
    assert "overran its 10.0s timeout by 5.5s" in caplog.text
    assert f"exiting with status {EXIT_STUCK}" in caplog.text


def test_a_stuck_job_exits_before_any_heartbeat() -> None:
    # Past the grace the job is abandoned: extending its reservation would keep it from coming back.
    harness = Harness(ExtendingDriver(), visibility_timeout_secs=3.0)
    with harness.supervisor.watching(DELIVERY, timeout_secs=1.0):
        harness.at(3.5)
    assert harness.exits == [EXIT_STUCK]
    assert harness.driver.extended == []


def test_a_job_without_timeout_is_never_called_stuck() -> None:
    harness = Harness(ExtendingDriver(), visibility_timeout_secs=0.0)
    with harness.supervisor.watching(DELIVERY, timeout_secs=None):
        harness.at(1e9)
    assert harness.exits == []


def test_a_running_supervisor_thread_stops_on_close() -> None:
    supervisor = Supervisor(ExtendingDriver(), 30.0)  # type: ignore[arg-type]
    # Only this supervisor's thread: other tests' workers that were never run() leave theirs alive.
    before = set(threading.enumerate())
    with supervisor.watching(DELIVERY, timeout_secs=None):
        threads = [t for t in threading.enumerate() if t.name == "oxide-supervisor" and t not in before]
        assert threads
    supervisor.close()
    assert all(not t.is_alive() for t in threads)


def stuck_listener() -> None:
    for _ in range(6000):  # a minute: the alarm ends it long before
        time.sleep(0.01)


def test_soft_timeout_interrupts_a_long_block_and_restores_the_alarm_handler() -> None:
    before = signal.getsignal(signal.SIGALRM)
    with pytest.raises(JobTimedOut, match=r"longer than its 0\.05s timeout"), soft_timeout(0.05):
        stuck_listener()
    assert signal.getsignal(signal.SIGALRM) is before


def test_soft_timeout_is_disarmed_when_the_block_ends_in_time() -> None:
    before = signal.getsignal(signal.SIGALRM)
    with soft_timeout(3600.0):
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 300  # its own timer, longer than pytest-timeout's
        assert signal.getsignal(signal.SIGALRM) is not before
    assert signal.getitimer(signal.ITIMER_REAL)[0] < 3600
    assert signal.getsignal(signal.SIGALRM) is before


def test_soft_timeout_without_a_timeout_arms_nothing() -> None:
    before = signal.getsignal(signal.SIGALRM)
    timer = signal.getitimer(signal.ITIMER_REAL)
    with soft_timeout(None):
        assert signal.getsignal(signal.SIGALRM) is before
        assert signal.getitimer(signal.ITIMER_REAL)[0] <= timer[0]


def test_soft_timeout_outside_the_main_thread_arms_nothing() -> None:
    # Signals are delivered to the main thread only, so a worker in a thread runs untimed.
    before = signal.getsignal(signal.SIGALRM)
    seen: list[object] = []

    def run() -> None:
        with soft_timeout(0.01):
            seen.append(signal.getsignal(signal.SIGALRM))
            time.sleep(0.05)  # had it armed, the alarm would have gone off in here
        seen.append("finished")

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [before, "finished"]


def worker_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "oxide.worker"]


def test_each_supervisor_line_names_the_queue_and_says_what_follows(caplog: pytest.LogCaptureFixture) -> None:
    delivery = Delivery(queue="mail", body=b"{}")
    harness = Harness(ExtendingDriver(ConnectionError("redis went away"), False), visibility_timeout_secs=3.0)
    with caplog.at_level(logging.WARNING, "oxide.worker"), harness.supervisor.watching(delivery, timeout_secs=10.0):
        harness.at(1.0)
        harness.at(2.0)
        harness.at(15.5)
    assert worker_lines(caplog) == [
        "queue=mail could not extend the reservation: redis went away",
        "queue=mail the reservation of the job in hand had expired before it was extended: "
        "another worker may run it too (was this process paused?)",
        "queue=mail job overran its 10.0s timeout by 5.5s and could not be interrupted: exiting with status 75; "
        "the job stays reserved and returns to the queue after the visibility timeout",
    ]


def test_a_visibility_timeout_under_a_second_still_gets_heartbeats() -> None:
    harness = Harness(ExtendingDriver(), visibility_timeout_secs=0.9)
    with harness.supervisor.watching(DELIVERY, timeout_secs=None):
        harness.at(0.31)
    assert harness.driver.extended == [DELIVERY]


def test_a_look_before_any_job_does_nothing() -> None:
    harness = Harness(ExtendingDriver(), visibility_timeout_secs=3.0)
    harness.at(1000.0)
    assert harness.driver.extended == []
    assert harness.exits == []


def beats_within_two_seconds(supervisor: Supervisor, driver: ExtendingDriver) -> int:
    """Watch a job on the real clock until the thread has extended it three times, or two seconds pass."""
    driver.extended.clear()
    with supervisor.watching(DELIVERY, timeout_secs=None):
        deadline = time.monotonic() + 2.0
        while len(driver.extended) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    return len(driver.extended)


def test_the_thread_beats_on_its_own_as_often_as_the_heartbeat_asks() -> None:
    # A real clock and the real thread: a 0.3 s visibility timeout wants a beat every 0.1 s, so three
    # beats come in well under a second; a thread that looked only once a second would need three.
    driver = ExtendingDriver()
    supervisor = Supervisor(driver, 0.3)  # type: ignore[arg-type]
    try:
        assert beats_within_two_seconds(supervisor, driver) >= 3
    finally:
        supervisor.close()


def test_a_supervisor_closed_once_watches_again() -> None:
    # Worker.run() closes its supervisor on the way out; a worker run again must still be watched.
    driver = ExtendingDriver()
    supervisor = Supervisor(driver, 0.3)  # type: ignore[arg-type]
    try:
        assert beats_within_two_seconds(supervisor, driver) >= 3
        supervisor.close()
        assert beats_within_two_seconds(supervisor, driver) >= 3
    finally:
        supervisor.close()


def wait_for(rang: list[float], secs: float = 5.0) -> None:
    deadline = time.monotonic() + secs
    while not rang and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.fixture
def outer_alarm() -> Iterator[list[float]]:
    """A SIGALRM handler of the application's own, recording when it rings; removed afterwards."""
    rang: list[float] = []
    before = signal.signal(signal.SIGALRM, lambda signum, frame: rang.append(time.monotonic()))
    yield rang
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, before)


@pytest.mark.timeout(0)  # pytest-timeout's own alarm would stand in for the one this test sets
def test_an_alarm_set_before_the_block_still_rings_after_it(outer_alarm: list[float]) -> None:
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    with soft_timeout(30.0):
        time.sleep(0.05)
    left = signal.getitimer(signal.ITIMER_REAL)[0]
    assert 0 < left <= 0.45  # re-armed for what was left of it, not for its whole delay again
    assert outer_alarm == []
    wait_for(outer_alarm)
    assert len(outer_alarm) == 1


@pytest.mark.timeout(0)
def test_an_alarm_that_fell_due_during_the_block_rings_just_after_it_with_its_own_handler(
    outer_alarm: list[float],
) -> None:
    signal.setitimer(signal.ITIMER_REAL, 0.02)
    with soft_timeout(30.0):
        time.sleep(0.1)  # the outer alarm falls due here; the block is not interrupted by it
        assert outer_alarm == []
        block_ended = time.monotonic()
    wait_for(outer_alarm)
    assert len(outer_alarm) == 1
    assert outer_alarm[0] >= block_ended
