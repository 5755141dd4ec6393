"""Retries, backoff, timeouts, expired reservations, heartbeats and delays, in-process.

The worker runs against the real Lua scripts on fakeredis, with every Redis
time (delays, backoffs, visibility deadlines) taken from a fake clock, so the
tests move time instead of waiting for it. Only the soft-timeout tests sleep,
for a fraction of a second, because SIGALRM is real.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import random
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import oxide.app
import oxide.queue
import oxide.worker.loop
from oxide import App, ConfigError, Mode, OxideError
from oxide.attempts import BACKOFF_MAX_SECS, AttemptPolicy, backoff_delay
from oxide.config import load_config
from oxide.drivers import Delivery
from oxide.events import listener_type_of
from oxide.failed import FailedJob
from oxide.supervision import EXIT_STUCK, Supervisor, stuck_grace_secs
from oxide.wire import Job
from oxide.worker import StopReason, Worker, WorkerOptions
from tests.worker_support import ClockedDriver, FakeClock, Greeted, make_config

VISIBILITY_SECS = 90.0


@pytest.fixture(autouse=True)
def exits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The workers built here record a stuck-job exit instead of ending pytest with os._exit."""
    calls: list[int] = []
    monkeypatch.setattr(oxide.worker.loop, "Supervisor", functools.partial(Supervisor, exit_process=calls.append))
    return calls


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_700_000_000.0)


@pytest.fixture
def driver(fake_redis: Any, clock: FakeClock) -> ClockedDriver:
    return ClockedDriver(fake_redis, clock)


@dataclass
class Flaky:
    """Raises for its first ``failures`` runs, then succeeds; remembers when (fake clock) each run began."""

    clock: FakeClock
    failures: int
    runs: list[float] = field(default_factory=list)
    on_success: Callable[[], object] = lambda: None

    def handle(self, event: Greeted) -> None:
        self.runs.append(self.clock.now)
        if len(self.runs) <= self.failures:
            raise RuntimeError(f"failure {len(self.runs)} of {self.failures}")
        self.on_success()


@dataclass
class Sleeper:
    """Sleeps for real far past any timeout set here, and swallows every Exception on the way."""

    runs: int = 0

    def handle(self, event: Greeted) -> None:
        self.runs += 1
        with contextlib.suppress(Exception):  # JobTimedOut is a BaseException: this must not catch it
            time.sleep(30)


@dataclass
class AsyncSleeper:
    runs: int = 0

    async def handle(self, event: Greeted) -> None:
        self.runs += 1
        await asyncio.sleep(30)


@dataclass
class Setup:
    app: App
    clock: FakeClock
    driver: ClockedDriver
    failed: list[FailedJob]

    def worker(self, options: WorkerOptions, **kwargs: Any) -> Worker:
        return Worker(
            self.app,
            "redis",
            ["default"],
            options,
            clock=self.clock,
            sleep=self.clock.sleep,
            failer=self.failed.append,
            **kwargs,
            driver=self.driver,
        )

    def push(self, listener: Any, name: str = "x", **job: Any) -> str:
        body = Job("test.greeted", listener_type_of(listener), {"name": name}, uuid=f"u-{name}", **job).to_json()
        self.driver.push("default", body)
        return body


def setup(listener: Any, mode: Mode, clock: FakeClock, driver: ClockedDriver) -> Setup:
    app = App(config=make_config())
    app.listen(Greeted, listener, mode)
    return Setup(app, clock, driver, [])


def all_gone(driver: ClockedDriver) -> bool:
    return driver.keys("default") == {"ready": [], "reserved": [], "delayed": [], "crashes": {}}


# -- retries and backoff ---------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 5])
def test_a_listener_failing_k_times_then_succeeding_runs_k_plus_1_times_with_growing_delays(
    k: int, clock: FakeClock, driver: ClockedDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed = random.randrange(2**32)
    print(f"jitter seed {seed}")
    rng = random.Random(seed)
    draws: list[tuple[float, float, float]] = []

    def uniform(low: float, high: float) -> float:
        value = rng.uniform(low, high)
        draws.append((low, high, value))
        return value

    flaky = Flaky(clock, failures=k)
    s = setup(flaky, Mode.queue("redis").tries(k + 1).backoff(2.0), clock, driver)
    s.push(flaky)
    worker = s.worker(WorkerOptions(max_time_secs=BACKOFF_MAX_SECS), jitter=uniform)
    flaky.on_success = worker.stop

    assert worker.run() is StopReason.INTERRUPTED
    assert len(flaky.runs) == k + 1
    assert s.failed == []
    assert all_gone(driver)
    delays = [delay for _taken, _released, delay in driver.releases]
    assert [(low, high) for low, high, _ in draws] == [(1.0, 1.25)] * k
    assert delays == [2.0 * 2 ** (n - 1) * draws[n - 1][2] for n in range(1, k + 1)]
    assert all(a < b for a, b in itertools.pairwise(delays))
    # Each retry carried its attempt count, and came back no sooner than its delay.
    assert [Job.from_json(released).attempts for _taken, released, _ in driver.releases] == list(range(1, k + 1))
    waited = [b - a for a, b in itertools.pairwise(flaky.runs)]
    assert all(w >= d for w, d in zip(waited, delays, strict=True)), (waited, delays)


def test_backoff_follows_the_formula_and_is_capped() -> None:
    top = lambda low, high: high  # noqa: E731
    assert [backoff_delay(3.0, n, uniform=top) for n in (1, 2, 3)] == [3.75, 7.5, 15.0]
    assert backoff_delay(3.0, 30, uniform=top) == BACKOFF_MAX_SECS
    assert backoff_delay(0.0, 5, uniform=top) == 0.0


@pytest.mark.parametrize("tries", [1, 3])
def test_failing_forever_ends_in_exactly_one_failed_record_after_n_tries(
    tries: int, clock: FakeClock, driver: ClockedDriver
) -> None:
    flaky = Flaky(clock, failures=10**9)
    s = setup(flaky, Mode.queue("redis").tries(tries).backoff(0.5), clock, driver)
    s.push(flaky, "doomed")
    assert s.worker(WorkerOptions(max_jobs=tries)).run() is StopReason.MAX_JOBS
    # Nothing is left to run, however long we wait.
    clock.advance(BACKOFF_MAX_SECS)
    assert s.worker(WorkerOptions(stop_when_empty=True)).run() is StopReason.QUEUE_EMPTY
    assert len(flaky.runs) == tries
    assert len(driver.releases) == tries - 1
    (record,) = s.failed
    assert record.uuid == "u-doomed"
    assert f"RuntimeError: failure {tries} of" in record.exception
    assert all_gone(driver)


@pytest.mark.parametrize("body", ["not json", Job("test.greeted", "nobody.Listens", {"name": "x"}).to_json()])
def test_undecodable_messages_fail_at_once_whatever_the_tries(
    body: str, clock: FakeClock, driver: ClockedDriver
) -> None:
    flaky = Flaky(clock, failures=0)
    s = setup(flaky, Mode.queue("redis").tries(5).backoff(1.0), clock, driver)
    driver.push("default", body)
    options = WorkerOptions(stop_when_empty=True, policy=AttemptPolicy(tries=5, backoff_secs=1.0))
    assert s.worker(options).run() is StopReason.QUEUE_EMPTY
    assert len(s.failed) == 1
    assert driver.releases == []
    assert all_gone(driver)


@pytest.mark.parametrize(
    ("listener_mode", "worker_policy", "runs"),
    [
        (Mode.queue("redis").tries(2), AttemptPolicy(tries=5), 2),
        (Mode.queue("redis"), AttemptPolicy(tries=4), 4),
        (Mode.queue("redis").tries(4), AttemptPolicy(tries=1), 4),
    ],
    ids=["listener-2-over-cli-5", "cli-4", "listener-4-over-cli-1"],
)
def test_a_listeners_own_tries_override_the_workers_default(
    listener_mode: Mode, worker_policy: AttemptPolicy, runs: int, clock: FakeClock, driver: ClockedDriver
) -> None:
    flaky = Flaky(clock, failures=10**9)
    s = setup(flaky, listener_mode, clock, driver)
    s.push(flaky)
    s.worker(WorkerOptions(max_jobs=runs, policy=worker_policy)).run()
    assert len(flaky.runs) == runs
    assert len(s.failed) == 1


def test_a_listeners_own_backoff_and_timeout_override_the_workers_default() -> None:
    default = AttemptPolicy(tries=5, backoff_secs=10.0, timeout_secs=60.0)
    own = default.for_mode(Mode.queue().tries(2).backoff(0.5).timeout(3))
    assert own == AttemptPolicy(tries=2, backoff_secs=0.5, timeout_secs=3.0)
    assert default.for_mode(Mode.queue()) == default


# -- reservations that expired: the job that kills its worker --------------------------------------


def lose_reservations(driver: ClockedDriver, clock: FakeClock, times: int) -> None:
    """``times`` workers take the job and die holding it: each reservation expires unacknowledged."""
    for _ in range(times):
        (taken,) = driver.inner.scripts.reserve(["default"])
        clock.advance(VISIBILITY_SECS + 1)
        assert taken.body  # held, never acked


def test_a_job_that_kills_its_workers_is_failed_before_running_once_the_tries_are_used_up(
    clock: FakeClock, driver: ClockedDriver
) -> None:
    flaky = Flaky(clock, failures=0)
    s = setup(flaky, Mode.queue("redis").tries(3), clock, driver)
    s.push(flaky, "killer")
    lose_reservations(driver, clock, 3)
    assert s.worker(WorkerOptions(stop_when_empty=True)).run() is StopReason.QUEUE_EMPTY
    assert flaky.runs == []  # never run a fourth time
    (record,) = s.failed
    assert "MaxAttemptsExceeded" in record.exception
    assert "3 of those run(s) never finished" in record.exception
    assert all_gone(driver)  # its crash count went with it


def test_expirations_and_exceptions_add_up_to_the_attempt(
    clock: FakeClock, driver: ClockedDriver, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = Flaky(clock, failures=0)
    s = setup(flaky, Mode.queue("redis").tries(4), clock, driver)
    s.push(flaky, "bruised", attempts=1)  # one earlier run raised
    lose_reservations(driver, clock, 2)
    with caplog.at_level(logging.INFO, logger="oxide.worker"):
        assert s.worker(WorkerOptions(stop_when_empty=True)).run() is StopReason.QUEUE_EMPTY
    assert len(flaky.runs) == 1
    assert s.failed == []
    assert any("outcome=done attempt=4" in r.getMessage() for r in caplog.records)
    assert all_gone(driver)


def test_a_retry_counts_lost_runs_into_the_attempts_it_carries(clock: FakeClock, driver: ClockedDriver) -> None:
    flaky = Flaky(clock, failures=1)
    s = setup(flaky, Mode.queue("redis").tries(5), clock, driver)
    s.push(flaky)
    lose_reservations(driver, clock, 2)
    s.worker(WorkerOptions(max_jobs=1)).run()
    ((_taken, released, _delay),) = driver.releases
    assert Job.from_json(released).attempts == 3  # two lost runs and one exception
    assert driver.keys("default")["crashes"] == {}  # counted in the body now, not twice


# -- timeouts --------------------------------------------------------------------------------------


@pytest.fixture
def alarm_restored() -> Iterator[None]:
    before = signal.getsignal(signal.SIGALRM)
    yield
    # Disarmed once the listener is done (pytest-timeout's own alarm, far longer, may still run).
    remaining, _interval = signal.getitimer(signal.ITIMER_REAL)
    assert not 0 < remaining <= 0.2
    assert signal.getsignal(signal.SIGALRM) is before


@pytest.mark.usefixtures("alarm_restored")
def test_a_plain_listener_past_its_timeout_is_interrupted_retried_then_failed(
    clock: FakeClock, driver: ClockedDriver
) -> None:
    sleeper = Sleeper()
    s = setup(sleeper, Mode.queue("redis").tries(2).timeout(0.2), clock, driver)
    s.push(sleeper, "slow")
    began = time.monotonic()
    assert s.worker(WorkerOptions(max_jobs=2)).run() is StopReason.MAX_JOBS
    assert time.monotonic() - began < 20  # interrupted, not slept out (each sleep is 30 s)
    assert sleeper.runs == 2
    assert len(driver.releases) == 1
    (record,) = s.failed
    assert "JobTimedOut: the listener ran longer than its 0.2s timeout" in record.exception
    assert all_gone(driver)


@pytest.mark.usefixtures("alarm_restored")
def test_the_workers_timeout_applies_to_a_listener_without_its_own(clock: FakeClock, driver: ClockedDriver) -> None:
    sleeper = Sleeper()
    s = setup(sleeper, Mode.queue("redis"), clock, driver)
    s.push(sleeper)
    s.worker(WorkerOptions(max_jobs=1, policy=AttemptPolicy(timeout_secs=0.2))).run()
    (record,) = s.failed
    assert "JobTimedOut" in record.exception


@pytest.mark.usefixtures("alarm_restored")
def test_an_async_listener_past_its_timeout_is_cancelled_and_failed(clock: FakeClock, driver: ClockedDriver) -> None:
    sleeper = AsyncSleeper()
    s = setup(sleeper, Mode.queue("redis").timeout(0.2), clock, driver)
    s.push(sleeper)
    began = time.monotonic()
    s.worker(WorkerOptions(max_jobs=1, policy=AttemptPolicy(timeout_secs=60))).run()
    assert time.monotonic() - began < 20
    assert sleeper.runs == 1
    (record,) = s.failed
    assert "JobTimedOut: the listener ran longer than its 0.2s timeout" in record.exception
    assert all_gone(driver)


# -- the supervisor: heartbeats and the stuck-job exit ---------------------------------------------


@dataclass
class ExtendRecorder:
    """Only what the supervisor calls: ``extend``, answering from ``answers`` (True once it runs out)."""

    clock: FakeClock
    answers: list[Any] = field(default_factory=list)
    extended_at: list[float] = field(default_factory=list)

    def extend(self, delivery: Delivery) -> bool:
        self.extended_at.append(self.clock.now)
        answer = self.answers.pop(0) if self.answers else True
        if isinstance(answer, BaseException):
            raise answer
        return bool(answer)


def quiet_supervisor(recorder: ExtendRecorder, visibility_secs: float, exits: list[int]) -> Supervisor:
    supervisor = Supervisor(recorder, visibility_secs, clock=recorder.clock, exit_process=exits.append)  # type: ignore[arg-type]
    # Closed first, its thread returns at once: only the test's own check() calls look at the job.
    supervisor.close()
    return supervisor


def test_the_supervisor_extends_the_reservation_every_third_of_the_visibility_timeout(clock: FakeClock) -> None:
    recorder = ExtendRecorder(clock)
    exits: list[int] = []
    supervisor = quiet_supervisor(recorder, 3.0, exits)
    supervisor.check()  # nothing in hand: nothing to do
    started = clock.now
    with supervisor.watching(Delivery("default", b"{}"), timeout_secs=None):
        for _ in range(40):
            clock.advance(0.25)
            supervisor.check()
    assert [round(t - started, 2) for t in recorder.extended_at] == [1.0 * n for n in range(1, 11)]
    assert exits == []
    clock.advance(5)
    supervisor.check()  # the job is done: no more beats
    assert len(recorder.extended_at) == 10


def test_no_heartbeat_without_reservations(clock: FakeClock) -> None:
    recorder = ExtendRecorder(clock)
    supervisor = quiet_supervisor(recorder, 0.0, [])
    with supervisor.watching(Delivery("default", b"{}"), timeout_secs=None):
        clock.advance(3600)
        supervisor.check()
    assert recorder.extended_at == []


@pytest.mark.parametrize("timeout_secs", [1.0, 10.0])
def test_the_supervisor_exits_75_once_a_job_overruns_its_timeout_and_grace(
    timeout_secs: float, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = ExtendRecorder(clock)
    exits: list[int] = []
    supervisor = quiet_supervisor(recorder, 90.0, exits)
    limit = timeout_secs + stuck_grace_secs(timeout_secs)
    with supervisor.watching(Delivery("default", b"{}"), timeout_secs=timeout_secs):
        clock.advance(limit)
        supervisor.check()
        assert exits == []  # at the limit, not past it
        clock.advance(0.01)
        with caplog.at_level(logging.CRITICAL, logger="oxide.worker"):
            supervisor.check()
    assert exits == [EXIT_STUCK] == [75]
    assert "could not be interrupted: exiting with status 75" in caplog.text


def test_a_failed_or_refused_heartbeat_is_logged_and_the_next_one_tried(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = ExtendRecorder(clock, answers=[OxideError("redis is down"), False, True])
    supervisor = quiet_supervisor(recorder, 3.0, [])
    with caplog.at_level(logging.WARNING, logger="oxide.worker"), supervisor.watching(Delivery("q", b"{}"), None):
        for _ in range(3):
            clock.advance(1.0)
            supervisor.check()
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "queue=q could not extend the reservation: redis is down",
        "queue=q the reservation of the job in hand had expired before it was extended: "
        "another worker may run it too (was this process paused?)",
    ]
    assert len(recorder.extended_at) == 3


# -- acknowledgements the server refused -----------------------------------------------------------


def test_an_ack_of_an_expired_reservation_is_logged(
    clock: FakeClock, driver: ClockedDriver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = Flaky(clock, failures=0)
    s = setup(flaky, Mode.queue("redis"), clock, driver)
    s.push(flaky)
    monkeypatch.setattr(driver, "ack", lambda delivery: False)
    with caplog.at_level(logging.WARNING, logger="oxide.worker"):
        s.worker(WorkerOptions(max_jobs=1)).run()
    assert "queue=default the job's reservation had expired before it was acknowledged: it may have run twice" in (
        caplog.text
    )


def test_a_release_of_an_expired_reservation_is_logged(
    clock: FakeClock, driver: ClockedDriver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = Flaky(clock, failures=1)
    s = setup(flaky, Mode.queue("redis").tries(2), clock, driver)
    s.push(flaky)
    monkeypatch.setattr(driver, "release", lambda delivery, body, delay_secs: False)
    with caplog.at_level(logging.WARNING, logger="oxide.worker"):
        s.worker(WorkerOptions(max_jobs=1)).run()
    assert "queue=default the job's reservation had expired: it is back in its queue already" in caplog.text


def test_an_ack_that_cannot_reach_redis_is_logged_and_the_job_stays_reserved(
    clock: FakeClock, driver: ClockedDriver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from oxide import ConnectionUnavailable

    flaky = Flaky(clock, failures=0)
    s = setup(flaky, Mode.queue("redis"), clock, driver)
    s.push(flaky)

    def down(delivery: Delivery) -> bool:
        raise ConnectionUnavailable("redis connection 'redis': refused")

    monkeypatch.setattr(driver, "ack", down)
    with caplog.at_level(logging.ERROR, logger="oxide.worker"):
        s.worker(WorkerOptions(max_jobs=1)).run()
    assert "could not acknowledge the job" in caplog.text
    assert len(driver.keys("default")["reserved"]) == 1  # it comes back after the visibility timeout


# -- delays ----------------------------------------------------------------------------------------


@pytest.fixture
def app_on(driver: ClockedDriver, monkeypatch: pytest.MonkeyPatch) -> Callable[[Any, Mode], App]:
    """An App whose redis connection is the clocked fakeredis driver."""
    real = oxide.app.make_driver
    monkeypatch.setattr(
        oxide.app, "make_driver", lambda config, runner: driver if config.name == "redis" else real(config, runner)
    )

    def make(listener: Any, mode: Mode) -> App:
        app = App(config=make_config())
        app.listen(Greeted, listener, mode)
        return app

    return make


def test_dispatch_honours_the_listeners_delay(
    clock: FakeClock, driver: ClockedDriver, app_on: Callable[[Any, Mode], App]
) -> None:
    flaky = Flaky(clock, failures=0)
    app = app_on(flaky, Mode.queue("redis").delay(30))
    dispatched = clock.now
    app.dispatch(Greeted(name="later"))
    keys = driver.keys("default")
    assert keys["ready"] == []
    ((member, due),) = keys["delayed"]
    assert due == round((dispatched + 30) * 1000)
    assert Job.from_json(member.split(b"|", 1)[1]).payload == {"name": "later"}
    worker = Worker(app, "redis", ["default"], WorkerOptions(max_time_secs=120), clock=clock, sleep=clock.sleep)
    flaky.on_success = worker.stop
    assert worker.run() is StopReason.INTERRUPTED
    (ran,) = flaky.runs
    assert ran >= dispatched + 30


def test_dispatch_without_delay_is_ready_at_once(
    clock: FakeClock, driver: ClockedDriver, app_on: Callable[[Any, Mode], App]
) -> None:
    app = app_on(Flaky(clock, failures=0), Mode.queue("redis"))
    app.dispatch(Greeted(name="now"))
    assert len(driver.keys("default")["ready"]) == 1
    assert driver.keys("default")["delayed"] == []


def test_push_push_many_and_queue_push_take_a_delay(
    clock: FakeClock, driver: ClockedDriver, app_on: Callable[[Any, Mode], App]
) -> None:
    app = app_on(Flaky(clock, failures=0), Mode.queue("redis"))
    job = Job("test.greeted", "x.Y", {"name": "a"})
    app.push("redis", "default", job, delay=5)
    app.push_many(None, "default", [job, job], delay=7.5)
    oxide.queue.push("redis", "default", job, delay=2)
    oxide.queue.push_many("redis", "default", [job], delay=0)
    keys = driver.keys("default")
    assert len(keys["ready"]) == 1
    now_ms = round(clock.now * 1000)
    assert sorted(score - now_ms for _member, score in keys["delayed"]) == [2000, 5000, 7500, 7500]


@pytest.mark.parametrize("delay", [-1, float("inf"), float("nan"), True, "5", None])
def test_a_bad_delay_is_refused_before_anything_is_pushed(
    delay: Any, clock: FakeClock, driver: ClockedDriver, app_on: Callable[[Any, Mode], App]
) -> None:
    app = app_on(Flaky(clock, failures=0), Mode.queue("redis"))
    with pytest.raises(OxideError, match="delay: expected a finite number of seconds >= 0"):
        app.push("redis", "default", Job("test.greeted", "x.Y", {"name": "a"}), delay=delay)
    assert all_gone(driver)


def test_the_sync_connection_runs_a_delayed_listener_at_once(clock: FakeClock) -> None:
    flaky = Flaky(clock, failures=0)
    app = App(config=make_config())
    app.listen(Greeted, flaky, Mode.queue("sync").delay(60))
    app.dispatch(Greeted(name="inline"))
    assert len(flaky.runs) == 1


def test_a_late_ack_from_a_paused_worker_does_not_wipe_the_crash_count_of_the_next_run(
    clock: FakeClock, driver: ClockedDriver
) -> None:
    # Regression: ack.lua cleared the crash count even when it no longer held the reservation, so
    # a late ack erased the lost runs of the job's next holders and the job ran past its tries.
    flaky = Flaky(clock, failures=0)
    s = setup(flaky, Mode.queue("redis").tries(2), clock, driver)
    s.push(flaky, "twice-lost")
    scripts = driver.inner.scripts
    (paused,) = scripts.reserve(["default"])  # worker A takes it, then stalls past its deadline
    clock.advance(VISIBILITY_SECS + 1)
    (second,) = scripts.reserve(["default"])  # worker B takes it back (one lost run)...
    assert second.crashes == 1
    assert scripts.ack(paused) is False  # ...A wakes up and acknowledges too late
    clock.advance(VISIBILITY_SECS + 1)  # B dies: a second lost run
    assert s.worker(WorkerOptions(stop_when_empty=True)).run() is StopReason.QUEUE_EMPTY
    assert flaky.runs == []  # two tries, both lost: never a third
    (record,) = s.failed
    assert "MaxAttemptsExceeded" in record.exception
    assert "2 of those run(s) never finished" in record.exception


# -- configuration ---------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["block_timeout_secs", "poll_interval_secs"])
def test_a_zero_wait_is_refused_because_brpop_would_block_for_ever(key: str, tmp_path: Path) -> None:
    # Regression: poll_interval_secs = 0 was accepted; an idle reserving worker then sent BRPOP with
    # timeout 0 to the wake-up lists, blocked until its socket timed out (block_timeout_secs + 10 s),
    # took that for a lost connection, and noticed neither SIGTERM nor plainly LPUSHed jobs meanwhile.
    (tmp_path / "queue.toml").write_text(f'default = "redis"\n[connections.redis]\ndriver = "redis"\n{key} = 0\n')
    with pytest.raises(ConfigError, match=rf"connections\.redis\.{key}: expected a number > 0, got 0"):
        load_config(tmp_path, environ={})
