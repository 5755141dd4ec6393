"""Fakes for testing the worker in-process: a clock that only moves when told, and a driver that never blocks."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oxide import App, Event, Mode
from oxide.config import Config, ConnectionConfig, DatabaseConfig
from oxide.drivers import Delivery
from oxide.drivers.redis import RedisDriver, queue_key
from oxide.drivers.reservations import keys_of
from oxide.failed import FailedJob
from oxide.wire import Job
from oxide.worker import Worker, WorkerOptions
from tests.conftest import redis_driver_for


class FakeClock:
    """``clock()`` returns ``now``; ``sleep(s)`` records ``s`` and moves ``now`` on, without sleeping."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, secs: float) -> None:
        self.now += secs

    def sleep(self, secs: float) -> None:
        self.sleeps.append(secs)
        self.now += secs


class InstantDriver:
    """The real RedisDriver over fakeredis, except that a take finding every queue empty moves the
    fake clock on by its timeout instead of blocking; a take that finds a job is fakeredis's BRPOP."""

    consumable = True

    def __init__(self, client: Any, clock: FakeClock, name: str = "redis") -> None:
        self.inner = redis_driver_for(client, name)
        self.client = client
        self.clock = clock
        self.name = name
        self.waits: list[float] = []
        self.closed = 0
        self.failures: list[BaseException] = []  # raised by the next takes, first one first
        self.taken: list[Delivery] = []

    def pop(self, queues: Sequence[str], timeout_secs: float) -> Delivery | None:
        self.waits.append(timeout_secs)
        if self.failures:
            raise self.failures.pop(0)
        if any(self.client.llen(queue_key(q)) for q in queues):
            delivery = self.inner.pop(queues, timeout_secs)
            assert delivery is not None
            self.taken.append(delivery)
            return delivery
        self.clock.advance(timeout_secs)
        return None

    def push(self, queue: str, body: str) -> None:
        self.inner.push(queue, body)

    def push_many(self, queue: str, bodies: Sequence[str]) -> None:
        self.inner.push_many(queue, bodies)

    def size(self, queue: str) -> int:
        return self.inner.size(queue)

    def later(self, queue: str, bodies: Sequence[str], delay_secs: float) -> None:
        self.inner.later(queue, bodies, delay_secs)

    def ack(self, delivery: Delivery) -> bool:
        return self.inner.ack(delivery)

    def release(self, delivery: Delivery, body: str, delay_secs: float) -> bool:
        return self.inner.release(delivery, body, delay_secs)

    def extend(self, delivery: Delivery) -> bool:
        return self.inner.extend(delivery)

    def give_back(self, deliveries: Sequence[Delivery]) -> int:
        return self.inner.give_back(deliveries)

    def close(self) -> None:
        self.closed += 1


@dataclass
class Greeted(Event):
    event_name = "test.greeted"
    name: str


@dataclass
class Parted(Event):
    event_name = "test.parted"
    name: str


@dataclass
class Recorder:
    """A listener instance that remembers every event it handled (registered as an instance, so shared)."""

    seen: list[str] = field(default_factory=list)
    on_handle: Any = None  # called with the event before it is recorded

    def handle(self, event: Greeted) -> None:
        if self.on_handle is not None:
            self.on_handle(event)
        self.seen.append(event.name)


class Explode:
    def handle(self, event: Greeted) -> None:
        raise RuntimeError(f"listener exploded on {event.name}")


class AsyncRecorder:
    loops: list[int] = []  # noqa: RUF012 -- shared on purpose: instances are made per job

    async def handle(self, event: Parted) -> None:
        import asyncio

        AsyncRecorder.loops.append(id(asyncio.get_running_loop()))


def make_config(block_timeout_secs: float = 5.0) -> Config:
    connections = {
        "redis": ConnectionConfig(name="redis", driver="redis", block_timeout_secs=block_timeout_secs),
        "sync": ConnectionConfig(name="sync", driver="sync"),
    }
    return Config(
        config_dir=Path("config"),
        root=Path(),
        default="redis",
        connections=connections,
        failed_driver="none",
        database=DatabaseConfig("sqlite", {}),
    )


@dataclass
class Harness:
    """An app with a Recorder, an Explode and an AsyncRecorder listener, a fake clock, a fakeredis driver and a failer."""

    app: App
    recorder: Recorder
    clock: FakeClock
    driver: InstantDriver
    failed: list[FailedJob]

    def worker(self, queues: Sequence[str] | None, options: WorkerOptions | None = None, **kwargs: Any) -> Worker:
        kwargs.setdefault("failer", self.failed.append)
        kwargs.setdefault("clock", self.clock)
        kwargs.setdefault("sleep", self.clock.sleep)
        kwargs.setdefault("driver", self.driver)
        return Worker(self.app, "redis", queues, options or WorkerOptions(stop_when_empty=True), **kwargs)

    def push(self, queue: str, *bodies: str) -> None:
        for body in bodies:
            self.driver.push(queue, body)

    def remaining(self, queue: str) -> int:
        return self.driver.size(queue)


RECORDER = "tests.worker_support.Recorder"
EXPLODE = "tests.worker_support.Explode"
ASYNC_RECORDER = "tests.worker_support.AsyncRecorder"


def greet(name: str, *, listener: str = RECORDER, job_uuid: str | None = "auto") -> str:
    """The wire form of a Greeted job for ``listener``; ``job_uuid=None`` leaves the uuid out."""
    if job_uuid == "auto":
        job_uuid = str(uuid.uuid4())
    return Job("test.greeted", listener, {"name": name}, uuid=job_uuid).to_json()


def make_harness(client: Any, block_timeout_secs: float = 5.0) -> Harness:
    app = App(config=make_config(block_timeout_secs))
    recorder = Recorder()
    app.listen(Greeted, recorder, Mode.queue("redis"))
    app.listen(Greeted, Explode, Mode.queue("redis"))
    app.listen(Parted, AsyncRecorder, Mode.queue("redis"))
    clock = FakeClock()
    return Harness(app, recorder, clock, InstantDriver(client, clock), [])


class ClockedDriver(InstantDriver):
    """The real RedisDriver over fakeredis with reservations timed by the fake clock (ms), so that
    delays, backoffs and visibility deadlines pass when the test moves the clock; a take finding
    nothing ready moves the clock on by its timeout instead of blocking. Releases are recorded."""

    def __init__(self, client: Any, clock: FakeClock, name: str = "redis", **settings: Any) -> None:
        super().__init__(client, clock, name)
        self.inner = RedisDriver(
            ConnectionConfig(name=name, driver="redis", **settings),
            client=client,
            clock_ms=lambda: round(clock.now * 1000),
        )
        self.releases: list[tuple[bytes, str, float]] = []  # (taken body, released body, delay_secs)

    def pop(self, queues: Sequence[str], timeout_secs: float) -> Delivery | None:
        self.waits.append(timeout_secs)
        if self.failures:
            raise self.failures.pop(0)
        taken = self.inner.scripts.reserve(queues)
        if not taken:
            self.clock.advance(timeout_secs)
            return None
        job = taken[0]
        delivery = Delivery(queue=job.queue, body=job.body, receipt=job, expirations=job.crashes)
        self.taken.append(delivery)
        return delivery

    def release(self, delivery: Delivery, body: str, delay_secs: float) -> bool:
        self.releases.append((delivery.body, body, delay_secs))
        return self.inner.release(delivery, body, delay_secs)

    def keys(self, queue: str) -> dict[str, Any]:
        """What Redis holds for ``queue``: ready bodies (front first), reserved and delayed members with scores."""
        ready, reserved, delayed, _notify, crashes = keys_of(queue)
        return {
            "ready": list(reversed(self.client.lrange(ready, 0, -1))),
            "reserved": self.client.zrange(reserved, 0, -1, withscores=True),
            "delayed": self.client.zrange(delayed, 0, -1, withscores=True),
            "crashes": self.client.hgetall(crashes),
        }
