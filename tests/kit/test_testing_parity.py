"""The drain reaches the outcomes a real worker on real Redis reaches, for the same jobs.

One list of scenarios, :data:`SCENARIOS`, is run three ways: drained from a
QueueFake, drained from a RedisFake (fakeredis through the real Redis driver),
and by a real :class:`~oxide.worker.Worker` against the real Redis server with
its production failer (the ``failed_jobs`` table, through ``provider_for``) and
the real clock. Each way is judged on what can be seen from outside: how often
each listener ran and which ``failed_jobs`` rows were written.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from oxide import App, Event, Job, Mode
from oxide.drivers.reservations import keys_of
from oxide.testing import QueueFake, RedisFake, WorkResult, sqlite_failed_store
from oxide.worker import Worker, WorkerOptions
from tests.conftest import REDIS_URL

from .support import make_config


@dataclass
class Ping(Event):
    event_name = "parity.ping"
    n: int


@dataclass
class Pong(Event):
    event_name = "parity.pong"
    n: int


CALLS: Counter[tuple[str, int]] = Counter()
CURRENT: dict[str, App] = {}


def called(listener: object, n: int) -> int:
    name = type(listener).__name__
    CALLS[name, n] += 1
    return CALLS[name, n]


class Succeeds:
    def handle(self, event: Ping) -> None:
        called(self, event.n)


class Fails:
    def handle(self, event: Ping) -> None:
        called(self, event.n)
        raise ValueError(f"fails on {event.n}")


class FailsEveryTry:
    def handle(self, event: Ping) -> None:
        called(self, event.n)
        raise ValueError(f"fails every try on {event.n}")


class SucceedsThirdTime:
    def handle(self, event: Ping) -> None:
        if called(self, event.n) < 3:
            raise ConnectionError("not yet")


class AsyncSucceedsSecondTime:
    async def handle(self, event: Ping) -> None:
        if called(self, event.n) < 2:
            raise RuntimeError("not yet")


class Overruns:
    def handle(self, event: Ping) -> None:
        called(self, event.n)
        time.sleep(5)  # the 0.1 s timeout interrupts it


class Chains:
    def handle(self, event: Ping) -> None:
        called(self, event.n)
        CURRENT["app"].dispatch(Pong(n=event.n))


class Echo:
    def handle(self, event: Pong) -> None:
        called(self, event.n)


@dataclass(frozen=True)
class Scenario:
    """One listener (or one raw message) and the outcome every way must reach for each of its jobs."""

    name: str
    status: str  # "done" or "failed"
    runs: int  # how often the listener runs, per job
    error: str | None = None  # the exception type in the failed_jobs row
    listener: type | None = None
    event: type[Event] = Ping
    queue: str = "default"
    tries: int | None = None
    backoff_secs: float | None = None
    timeout_secs: float | None = None
    raw: str | None = None  # a message pushed as is (one job), instead of listening

    def mode(self, prefix: str) -> Mode:
        mode = Mode.queue("redis").on_queue(prefix + self.queue)
        if self.tries is not None:
            mode = mode.tries(self.tries)
        if self.backoff_secs is not None:
            mode = mode.backoff(self.backoff_secs)
        if self.timeout_secs is not None:
            mode = mode.timeout(self.timeout_secs)
        return mode


SCENARIOS = [
    Scenario("Succeeds", "done", 1, listener=Succeeds),
    Scenario("Fails", "failed", 1, "ValueError", listener=Fails),
    Scenario("FailsEveryTry", "failed", 3, "ValueError", listener=FailsEveryTry, tries=3, backoff_secs=0.01),
    Scenario("SucceedsThirdTime", "done", 3, listener=SucceedsThirdTime, queue="low", tries=3, backoff_secs=0.01),
    Scenario("AsyncSucceedsSecondTime", "done", 2, listener=AsyncSucceedsSecondTime, tries=2),
    Scenario("Overruns", "failed", 1, "JobTimedOut", listener=Overruns, timeout_secs=0.1),
    Scenario("Chains", "done", 1, listener=Chains),
    Scenario("Echo", "done", 1, listener=Echo, event=Pong, queue="low"),
    Scenario(
        "PayloadDoesNotFit",
        "failed",
        0,
        "JobDecodeError",
        raw=Job("parity.ping", f"{__name__}.Succeeds", {"wrong": 1}, uuid="raw-PayloadDoesNotFit").to_json(),
    ),
    Scenario(
        "NobodyListens",
        "failed",
        0,
        "ListenerNotRegistered",
        raw=Job("parity.ping", "parity.Nobody", {"n": 0}, uuid="raw-NobodyListens").to_json(),
    ),
    Scenario("NotJson", "failed", 0, "JobDecodeError", raw="{not json: raw-NotJson"),
]
EVENTS = (1, 2)  # each listener gets one job per event dispatched

Key = tuple[str, int]  # (scenario, event n); raw messages have n = 0
Outcome = tuple[str, int, str | None]  # (status, listener runs, error type)


def expected() -> dict[Key, Outcome]:
    return {
        (s.name, n): (s.status, s.runs, s.error) for s in SCENARIOS for n in ((0,) if s.raw is not None else EVENTS)
    }


def build_app(prefix: str, root: Path) -> tuple[App, Any]:
    """The scenarios' app, with its failed_jobs table in a SQLite file under ``root`` (migrated)."""
    store = sqlite_failed_store(root)
    config = make_config(prefix, url=REDIS_URL, root=root, failed_db=root / "database" / "failed_jobs.sqlite")
    app = CURRENT["app"] = App(config=config)
    for scenario in SCENARIOS:
        if scenario.listener is not None:
            app.listen(scenario.event, scenario.listener, scenario.mode(prefix))
    return app, store


def enqueue(app: App, prefix: str) -> None:
    for n in EVENTS:
        app.dispatch(Ping(n=n))
    for scenario in SCENARIOS:
        if scenario.raw is not None:
            app.driver("redis").push(prefix + scenario.queue, scenario.raw)


def queues(prefix: str) -> list[str]:
    return [prefix + "default", prefix + "low"]


def observed(store: Any) -> tuple[dict[Key, Outcome], Counter[tuple[str, str, str, str]]]:
    """Each job's outcome from the listeners' runs and the failed_jobs rows; and the rows themselves."""
    by_key: dict[Key, str] = {}
    rows: Counter[tuple[str, str, str, str]] = Counter()
    for row in store.all():
        error = row.exception.strip().splitlines()[-1].split(":", 1)[0].rsplit(".", 1)[-1]
        raw = next((s.name for s in SCENARIOS if s.raw is not None and f"raw-{s.name}" in row.uuid + row.payload), None)
        key = (raw, 0) if raw is not None else (row.listener_type.rsplit(".", 1)[-1], json.loads(row.payload)["n"])
        assert key not in by_key, f"two failed_jobs rows for {key}"
        by_key[key] = error
        rows[row.event_name, row.listener_type, row.payload, error] += 1
    outcomes: dict[Key, Outcome] = {}
    for key in {*CALLS, *by_key}:
        status = "failed" if key in by_key else "done"
        outcomes[key] = (status, CALLS[key], by_key.get(key))
    return outcomes, rows


def run_real_worker(app: App, prefix: str, client: Any) -> None:
    """Real workers, as ``queue:work --stop-when-empty`` runs them, until no job is left (retries wait in real time)."""
    names = queues(prefix)
    for _ in range(100):
        Worker(app, "redis", names, WorkerOptions(stop_when_empty=True)).run()
        if not any(client.exists(*keys_of(name)[:3]) for name in names):
            return
    pytest.fail("the real worker left jobs behind after 100 runs")


def run_way(
    way: str, prefix: str, root: Path, client: Any = None
) -> tuple[dict[Key, Outcome], Counter[Any], WorkResult | None]:
    CALLS.clear()
    app, store = build_app(prefix, root / way)
    result = None
    try:
        if way == "redis":
            enqueue(app, prefix)
            run_real_worker(app, prefix, client)
        else:
            with QueueFake(app) if way == "memory" else RedisFake(app) as fake:
                enqueue(app, prefix)
                result = fake.drain("redis", queues(prefix), failed=store)
        outcomes, rows = observed(store)
    finally:
        app.close()
        store.database.close()
    return outcomes, rows, result


def check_result(result: WorkResult, outcomes: dict[Key, Outcome]) -> None:
    """The drain's own report agrees with what was observed from outside."""
    for job in result.jobs:
        if job.event_name == "":
            continue  # "NotJson": no listener, no payload to name it by
        if job.uuid and job.uuid.startswith("raw-"):
            key: Key = (job.uuid[len("raw-") :], 0)
            runs = 0
        else:
            key = (job.listener_type.rsplit(".", 1)[-1], job.payload["n"])
            runs = job.attempts
        error = None if job.failed_job is None else outcomes[key][2]
        assert (job.status, runs, error) == outcomes[key], key


@pytest.mark.parametrize("way", ["memory", "fakeredis", pytest.param("redis", marks=pytest.mark.redis)])
def test_each_way_reaches_the_expected_outcomes(
    way: str, key_prefix: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    client = request.getfixturevalue("real_redis") if way == "redis" else None
    outcomes, _rows, result = run_way(way, key_prefix, tmp_path, client)
    assert outcomes == expected()
    if result is not None:
        check_result(result, outcomes)


@pytest.mark.redis
@pytest.mark.parametrize("way", ["memory", "fakeredis"])
def test_the_drain_matches_a_real_worker_on_real_redis(
    way: str, key_prefix: str, tmp_path: Path, real_redis: Any
) -> None:
    real_outcomes, real_rows, _ = run_way("redis", key_prefix, tmp_path, real_redis)
    drained_outcomes, drained_rows, result = run_way(way, key_prefix, tmp_path)
    assert drained_outcomes == real_outcomes
    assert drained_rows == real_rows  # the same failed_jobs rows: event, listener, payload, error
    assert result is not None
    assert len(result.failed_jobs) == sum(real_rows.values())
