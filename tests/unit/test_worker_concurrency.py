"""A worker with several slots, on fakeredis with reservations: threads, an event loop, stops, timeouts, memory.

Listeners here prove what they claim through each other (a barrier only opens
when N run at once; a gate opens when the test says), never through elapsed
time. The waits are liveness bounds for threads to get somewhere.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import os
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fakeredis
import pytest

import oxide.worker.loop
from oxide import App, Event, Mode
from oxide.config import Config, ConnectionConfig, DatabaseConfig
from oxide.drivers.redis import RedisDriver
from oxide.drivers.reservations import keys_of
from oxide.failed import FailedJob
from oxide.supervision import EXIT_STUCK, Supervisor
from oxide.wire import Job
from oxide.worker import StopReason, Worker, WorkerOptions
from oxide.worker.outcomes import Abandoned

QUEUE = "work"


@dataclass
class Ran(Event):
    event_name = "test.ran"
    token: str


def wait_for(condition: Callable[[], object], what: str, secs: float = 10.0) -> None:
    deadline = time.monotonic() + secs
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)


@dataclass
class Rig:
    """An app on fakeredis whose listeners the test registers, and what the worker recorded."""

    client: Any
    driver: RedisDriver
    app: App
    failed: list[FailedJob] = field(default_factory=list)
    exits: list[int] = field(default_factory=list)

    def listen(self, listener: Any, mode: Mode | None = None) -> str:
        self.app.listen(Ran, listener, mode or Mode.queue("redis"))
        cls = listener if isinstance(listener, type) else type(listener)
        return f"{cls.__module__}.{cls.__qualname__}"

    def push(self, listener: str, *tokens: str) -> list[str]:
        bodies = [Job(Ran.event_name, listener, {"token": t}, uuid=t).to_json() for t in tokens]
        self.driver.push_many(QUEUE, bodies)
        return bodies

    def worker(self, **options: Any) -> Worker:
        options.setdefault("handle_signals", False)
        return Worker(self.app, "redis", [QUEUE], WorkerOptions(**options), failer=self.failed.append)

    def ready(self) -> list[bytes]:
        return list(reversed(self.client.lrange(keys_of(QUEUE)[0], 0, -1)))

    def reserved(self) -> int:
        return int(self.client.zcard(keys_of(QUEUE)[1]))


@pytest.fixture
def rig(monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    connection = ConnectionConfig(
        name="redis", driver="redis", block_timeout_secs=0.05, poll_interval_secs=0.02, visibility_timeout_secs=30
    )
    config = Config(
        config_dir=None,  # type: ignore[arg-type]
        root=None,  # type: ignore[arg-type]
        default="redis",
        connections={"redis": connection},
        failed_driver="none",
        database=DatabaseConfig("sqlite", {}),
    )
    app = App(config=config)
    driver = RedisDriver(connection, client=client)
    app.use_driver("redis", driver)
    rig = Rig(client, driver, app)
    # A stuck job's exit is recorded instead of ending pytest.
    monkeypatch.setattr(oxide.worker.loop, "Supervisor", functools.partial(Supervisor, exit_process=rig.exits.append))
    yield rig
    app.use_driver("redis", None)


def slot_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("oxide-slot-")}


# -- several at once -------------------------------------------------------------------------------


@dataclass
class Together:
    """Every run waits at a barrier for ``parties`` runs: it passes only if that many run at once."""

    barrier: threading.Barrier
    threads: set[str] = field(default_factory=set)
    done: list[str] = field(default_factory=list)

    def handle(self, event: Ran) -> None:
        self.barrier.wait()
        self.threads.add(threading.current_thread().name)
        self.done.append(event.token)


def test_plain_listeners_run_n_at_once_on_n_threads(rig: Rig) -> None:
    listener = Together(threading.Barrier(4, timeout=10))
    name = rig.listen(listener)
    rig.push(name, *(f"j{n}" for n in range(8)))
    assert rig.worker(concurrency=4, stop_when_empty=True).run() is StopReason.QUEUE_EMPTY
    assert sorted(listener.done) == [f"j{n}" for n in range(8)]
    assert len(listener.threads) == 4
    assert all(t.startswith("oxide-slot-") for t in listener.threads)
    assert rig.failed == []
    assert rig.ready() == []
    assert rig.reserved() == 0


def test_one_slot_too_few_and_the_barrier_never_opens(rig: Rig) -> None:
    # The proof above holds only because four ran at once: with three slots the same jobs fail.
    listener = Together(threading.Barrier(4, timeout=0.2))
    name = rig.listen(listener)
    rig.push(name, *(f"j{n}" for n in range(3)))
    rig.worker(concurrency=3, stop_when_empty=True).run()
    assert listener.done == []
    assert len(rig.failed) == 3
    assert all("BrokenBarrierError" in f.exception for f in rig.failed)


@dataclass
class Counting:
    """Counts the runs in flight and the most ever seen."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    now: int = 0
    most: int = 0
    done: int = 0

    def handle(self, event: Ran) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(0.002)
        with self.lock:
            self.now -= 1
            self.done += 1


def test_never_more_jobs_in_flight_than_slots(rig: Rig) -> None:
    listener = Counting()
    name = rig.listen(listener)
    rig.push(name, *(f"j{n}" for n in range(60)))
    worker = rig.worker(concurrency=3, stop_when_empty=True)
    assert worker.run() is StopReason.QUEUE_EMPTY
    assert listener.done == 60 == worker.jobs_processed
    assert 1 <= listener.most <= 3


@dataclass
class AsyncTogether:
    """Async runs that wait for each other on the loop: all ``parties`` must be awaiting at once."""

    parties: int
    started: int = 0
    loops: set[int] = field(default_factory=set)
    threads: set[int] = field(default_factory=set)
    done: list[str] = field(default_factory=list)
    all_in: asyncio.Event | None = None

    async def handle(self, event: Ran) -> None:
        if self.all_in is None:
            self.all_in = asyncio.Event()
        self.loops.add(id(asyncio.get_running_loop()))
        self.threads.add(threading.get_ident())
        self.started += 1
        if self.started == self.parties:
            self.all_in.set()
        await asyncio.wait_for(self.all_in.wait(), 10)
        self.done.append(event.token)


def test_async_listeners_are_tasks_on_one_loop_and_hold_no_thread(rig: Rig) -> None:
    listener = AsyncTogether(parties=6)
    name = rig.listen(listener)
    rig.push(name, *(f"a{n}" for n in range(6)))
    before = slot_threads()
    assert rig.worker(concurrency=6, stop_when_empty=True).run() is StopReason.QUEUE_EMPTY
    assert sorted(listener.done) == [f"a{n}" for n in range(6)]
    assert len(listener.loops) == 1
    assert len(listener.threads) == 1
    assert threading.get_ident() not in listener.threads  # not the worker's own thread either
    assert slot_threads() - before == set()  # no thread pool was started for them
    assert rig.failed == []


@dataclass
class Handshake:
    """A plain listener that waits for an async one: both must be in flight at once."""

    seen: threading.Event = field(default_factory=threading.Event)
    done: list[str] = field(default_factory=list)

    def handle(self, event: Ran) -> None:
        assert self.seen.wait(10), "the async job never ran alongside"
        self.done.append(event.token)


@dataclass
class AsyncWave:
    handshake: Handshake

    async def handle(self, event: Ran) -> None:
        await asyncio.sleep(0)
        self.handshake.seen.set()


def test_plain_and_async_listeners_run_side_by_side(rig: Rig) -> None:
    plain = Handshake()
    plain_name = rig.listen(plain)
    async_name = rig.listen(AsyncWave(plain))
    rig.push(plain_name, "plain")
    rig.push(async_name, "async")
    assert rig.worker(concurrency=2, stop_when_empty=True).run() is StopReason.QUEUE_EMPTY
    assert plain.done == ["plain"]
    assert rig.failed == []


# -- stop conditions with several slots ------------------------------------------------------------


def test_max_jobs_takes_no_more_than_that_many_whatever_the_slots(rig: Rig) -> None:
    listener = Counting()
    name = rig.listen(listener)
    rig.push(name, *(f"j{n}" for n in range(10)))
    worker = rig.worker(concurrency=4, max_jobs=6)
    assert worker.run() is StopReason.MAX_JOBS
    assert listener.done == 6
    assert len(rig.ready()) == 4
    assert rig.reserved() == 0


def test_once_runs_one_job_with_many_slots(rig: Rig) -> None:
    listener = Counting()
    name = rig.listen(listener)
    rig.push(name, "a", "b", "c")
    assert rig.worker(concurrency=4, once=True).run() is StopReason.ONCE
    assert listener.done == 1
    assert len(rig.ready()) == 2


@dataclass
class FailsOnce:
    runs: list[str] = field(default_factory=list)

    def handle(self, event: Ran) -> None:
        self.runs.append(event.token)
        if self.runs.count(event.token) == 1:
            raise RuntimeError("first run fails")


def test_stop_when_empty_waits_for_the_retries_of_jobs_in_flight(rig: Rig) -> None:
    listener = FailsOnce()
    name = rig.listen(listener, Mode.queue("redis").tries(2))
    rig.push(name, "a", "b")
    assert rig.worker(concurrency=4, stop_when_empty=True).run() is StopReason.QUEUE_EMPTY
    assert sorted(listener.runs) == ["a", "a", "b", "b"]
    assert rig.failed == []
    assert rig.ready() == []
    assert rig.reserved() == 0


# -- stopping --------------------------------------------------------------------------------------


@dataclass
class Gated:
    """Runs wait at a gate the test opens, looping in Python so that an interruption can land."""

    gate: threading.Event = field(default_factory=threading.Event)
    started: list[str] = field(default_factory=list)
    done: list[str] = field(default_factory=list)
    interrupted: list[str] = field(default_factory=list)

    def handle(self, event: Ran) -> None:
        self.started.append(event.token)
        try:
            while not self.gate.is_set():
                time.sleep(0.002)
        except Abandoned:
            self.interrupted.append(event.token)
            raise
        self.done.append(event.token)


def run_in_thread(worker: Worker) -> tuple[threading.Thread, list[StopReason]]:
    reasons: list[StopReason] = []
    thread = threading.Thread(target=lambda: reasons.append(worker.run()))
    thread.start()
    return thread, reasons


def test_a_stop_finishes_every_job_in_flight_and_takes_no_more(rig: Rig) -> None:
    listener = Gated()
    name = rig.listen(listener)
    rig.push(name, *(f"j{n}" for n in range(5)))
    worker = rig.worker(concurrency=3)
    thread, reasons = run_in_thread(worker)
    wait_for(lambda: len(listener.started) == 3, "three jobs to start")
    worker.stop()
    time.sleep(0.05)  # the loop sees the stop before the jobs end: it must wait for them
    listener.gate.set()
    thread.join(10)
    assert reasons == [StopReason.INTERRUPTED]
    assert sorted(listener.done) == ["j0", "j1", "j2"]
    assert rig.ready() == [b for b in rig.ready() if b]  # what was not taken is still queued...
    assert len(rig.ready()) == 2
    assert rig.reserved() == 0  # ...and nothing is left reserved


def test_stop_now_interrupts_the_jobs_in_flight_and_gives_them_back_in_order(rig: Rig) -> None:
    listener = Gated()
    name = rig.listen(listener)
    bodies = rig.push(name, "j0", "j1", "j2")
    worker = rig.worker(concurrency=2)
    thread, reasons = run_in_thread(worker)
    wait_for(lambda: len(listener.started) == 2, "two jobs to start")
    worker.stop(now=True)
    thread.join(10)
    assert reasons == [StopReason.INTERRUPTED]
    wait_for(lambda: len(listener.interrupted) == 2, "both listeners to be interrupted")
    assert listener.done == []
    # Back at the front, as they were taken (no attempt counted), then the one never taken.
    assert rig.ready() == [b.encode() for b in bodies]
    assert rig.reserved() == 0
    assert rig.failed == []


def test_the_stop_timeout_gives_back_what_outlasts_it(rig: Rig) -> None:
    listener = Gated()
    name = rig.listen(listener)
    bodies = rig.push(name, "j0")
    worker = rig.worker(concurrency=2, stop_timeout_secs=0.2)
    thread, reasons = run_in_thread(worker)
    wait_for(lambda: listener.started == ["j0"], "the job to start")
    worker.stop()
    thread.join(10)
    assert not thread.is_alive()
    assert reasons == [StopReason.INTERRUPTED]
    assert rig.ready() == [bodies[0].encode()]
    wait_for(lambda: listener.interrupted == ["j0"], "the listener to be interrupted")
    listener.gate.set()


@dataclass
class AsyncGated:
    gate: asyncio.Event | None = None
    started: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    async def handle(self, event: Ran) -> None:
        self.started.append(event.token)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.cancelled.append(event.token)
            raise


def test_stop_now_cancels_an_async_job_and_gives_it_back(rig: Rig) -> None:
    listener = AsyncGated()
    name = rig.listen(listener)
    bodies = rig.push(name, "a0")
    worker = rig.worker(concurrency=2)
    thread, reasons = run_in_thread(worker)
    wait_for(lambda: listener.started == ["a0"], "the job to start")
    worker.stop(now=True)
    thread.join(10)
    assert reasons == [StopReason.INTERRUPTED]
    wait_for(lambda: listener.cancelled == ["a0"], "the task to be cancelled")
    assert rig.ready() == [bodies[0].encode()]
    assert rig.reserved() == 0
    assert rig.failed == []


# -- timeouts on slots -----------------------------------------------------------------------------


@dataclass
class Busy:
    """Loops in Python until interrupted; ``swallow`` catches the interruption and returns as if done."""

    swallow: bool = False
    runs: int = 0

    def handle(self, event: Ran) -> None:
        self.runs += 1
        try:
            while True:
                time.sleep(0.002)
        except BaseException:
            if not self.swallow:
                raise


@pytest.mark.parametrize("swallow", [False, True], ids=["raises", "swallows-and-returns"])
def test_a_plain_listener_on_a_thread_past_its_timeout_is_timed_out_never_done(rig: Rig, swallow: bool) -> None:
    listener = Busy(swallow=swallow)
    name = rig.listen(listener, Mode.queue("redis").tries(2).timeout(0.1))
    rig.push(name, "t0")
    assert rig.worker(concurrency=2, stop_when_empty=True).run() is StopReason.QUEUE_EMPTY
    assert listener.runs == 2  # the first run timed out and was retried
    (record,) = rig.failed
    assert "JobTimedOut: the listener ran longer than its 0.1s timeout" in record.exception
    assert rig.ready() == []
    assert rig.reserved() == 0


@dataclass
class AsyncSlow:
    async def handle(self, event: Ran) -> None:
        await asyncio.sleep(60)


def test_an_async_listener_past_its_timeout_is_cancelled_as_timed_out(rig: Rig) -> None:
    name = rig.listen(AsyncSlow(), Mode.queue("redis").timeout(0.1))
    rig.push(name, "t0")
    assert rig.worker(concurrency=2, stop_when_empty=True).run() is StopReason.QUEUE_EMPTY
    (record,) = rig.failed
    assert "JobTimedOut: the listener ran longer than its 0.1s timeout" in record.exception


def test_a_stuck_thread_stops_the_worker_which_exits_75_and_leaves_the_job_reserved() -> None:
    # In a process of its own, without a tracer: see tests/unit/stuck_slot_child.py for why.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    child = subprocess.run(
        [sys.executable, "-m", "tests.unit.stuck_slot_child"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    result = json.loads(child.stdout.splitlines()[-1])
    assert result["reason"] == StopReason.STUCK.value
    assert result["exits"] == [EXIT_STUCK]
    assert result["started"] == ["fine", "stuck"]
    # The other job finished and was acknowledged; the stuck one returns after the visibility timeout.
    assert (result["ready"], result["reserved"], result["failed"]) == (0, 1, 0)
    assert "could not be interrupted: the worker stops taking jobs and will exit with status 75" in child.stderr


# -- memory ----------------------------------------------------------------------------------------


class Payload:
    """Something large a listener holds; weakly referenced to see whether anything keeps it."""


@dataclass
class Leaky:
    refs: list[weakref.ref[Payload]] = field(default_factory=list)

    def handle(self, event: Ran) -> None:
        held = Payload()
        self.refs.append(weakref.ref(held))
        if event.token.startswith("fail"):
            raise RuntimeError(held)  # the exception, its traceback and their frames all reach it


@pytest.mark.parametrize("concurrency", [1, 4])
def test_nothing_of_a_finished_job_stays_referenced(rig: Rig, concurrency: int) -> None:
    listener = Leaky()
    name = rig.listen(listener, Mode.queue("redis").tries(2))
    # First a warm-up, so that redis-py has loaded every script: its first call of each fails with
    # NoScriptError inside redis-py, once per process, and that error and its frames form a cycle.
    rig.push(name, "fail-warm-up")
    rig.worker(concurrency=concurrency, stop_when_empty=True).run()
    listener.refs.clear()
    rig.push(name, "ok0", "fail0", "ok1", "fail1")
    gc.disable()  # a reference cycle would keep them alive until a collection: there must be none
    try:
        assert rig.worker(concurrency=concurrency, stop_when_empty=True).run() is StopReason.QUEUE_EMPTY
        alive = [ref for ref in listener.refs if ref() is not None]
    finally:
        gc.enable()
    assert len(listener.refs) == 6  # the failing ones ran twice
    assert alive == []
    assert len(rig.failed) == 3
