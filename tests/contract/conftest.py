"""``driver_under_test``: every queue backend behind the Driver contract, each with a clock the test moves.

A backend here is one function that yields a :class:`Backend`: how to build a
driver on it (with the given clock; each call is another worker on the same
store) and where its queues live. A new driver adds one function and one
entry in :data:`BACKENDS`; the suite in this directory runs against it as it is.

Real servers come from the shared fixtures of ``tests/conftest.py``: they skip
when absent, and fail with ``OXIDE_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from oxide.config import ConnectionConfig, parse_database_url
from oxide.db import connect_database
from oxide.db.migrations import Migrator, load_migrations, publish
from oxide.drivers import Driver
from oxide.drivers.database import DatabaseDriver
from oxide.drivers.redis import RedisDriver
from tests.conftest import _scratch_mysql, _scratch_postgresql

VISIBILITY_SECS = 10.0
# Redis waits for a producer's signal (BRPOP) before saying a queue is empty; short keeps empty takes quick.
POLL_SECS = 0.01


@dataclass
class FakeClock:
    """Milliseconds since the epoch, moved only by the test."""

    now_ms: int = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, secs: float) -> None:
        self.now_ms += round(secs * 1000)


@dataclass
class Backend:
    """How to reach one backend: ``make(clock)`` builds one more driver (one more worker) on it."""

    make: Callable[[FakeClock], Driver]
    prefix: str = ""  # every queue name of the test starts with it (Redis keys are shared)


@dataclass
class DriverUnderTest:
    """One backend, its fake clock, and drivers on it; ``driver`` is the first worker."""

    name: str
    backend: Backend
    clock: FakeClock = field(default_factory=FakeClock)
    visibility_secs: float = VISIBILITY_SECS
    _drivers: list[Driver] = field(default_factory=list)
    _namespaces: Iterator[int] = field(default_factory=itertools.count)

    def another(self) -> Driver:
        """Another worker on the same store and clock (a driver with its own connection)."""
        driver = self.backend.make(self.clock)
        self._drivers.append(driver)
        return driver

    @property
    def driver(self) -> Driver:
        return self._drivers[0] if self._drivers else self.another()

    def queues(self, *names: str) -> list[str]:
        """Queue names private to this test."""
        return [f"{self.backend.prefix}{name}" for name in names]

    def fresh_queues(self, *names: str) -> list[str]:
        """Queue names no earlier call returned: a clean slate for each example of a property test."""
        return self.queues(*(f"n{next(self._namespaces)}-{name}" for name in names))

    def close(self) -> None:
        for driver in self._drivers:
            driver.close()


def _redis_config(name: str) -> ConnectionConfig:
    return ConnectionConfig(
        name=name, driver="redis", visibility_timeout_secs=VISIBILITY_SECS, poll_interval_secs=POLL_SECS
    )


def _fakeredis(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    import fakeredis

    server = fakeredis.FakeServer()
    yield Backend(
        lambda clock: RedisDriver(_redis_config("fakeredis"), client=fakeredis.FakeRedis(server=server), clock_ms=clock)
    )


def _redis(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    import redis

    url = request.getfixturevalue("redis_server_url")
    request.getfixturevalue("real_redis")  # deletes this test's keys (under key_prefix) afterwards
    prefix = request.getfixturevalue("key_prefix")
    yield Backend(
        lambda clock: RedisDriver(_redis_config("redis"), client=redis.Redis.from_url(url), clock_ms=clock), prefix
    )


def _redis_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    # The hash tag in the prefix keeps every queue of the test on one slot: a priority list may name several.
    cluster = request.getfixturevalue("redis_cluster")
    config = dataclasses.replace(
        _redis_config("redis-cluster"), url=cluster.url, prefix=request.getfixturevalue("cluster_prefix")
    )
    yield Backend(lambda clock: RedisDriver(config, clock_ms=clock), request.getfixturevalue("key_prefix"))


def _database(dialect: str, url: str, root: Path) -> Backend:
    parsed = parse_database_url(url)
    migrator_db = connect_database(parsed, root, create=True)
    try:
        directory = root / "database" / "migrations"
        publish("queue", directory)
        Migrator(migrator_db).migrate(load_migrations(directory))
    finally:
        migrator_db.close()
    if parsed.dialect == "sqlite":
        parsed = dataclasses.replace(parsed, path=str(root / (parsed.path or "")))  # as load_config does
    config = ConnectionConfig(
        name=f"database-{dialect}",
        driver="database",
        visibility_timeout_secs=VISIBILITY_SECS,
        poll_interval_secs=0.5,
        connection=dialect,
        database=parsed,
    )

    def make(clock: FakeClock) -> Driver:
        # The wait of an empty take is counted in sleeps, so a sleep that returns at once makes it instant.
        return DatabaseDriver(config, clock_ms=clock, sleep=lambda _s: None)

    return Backend(make)


def _sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield _database("sqlite", f"sqlite:///{tmp_path / 'database.sqlite'}", tmp_path)


def _postgresql(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    for url in _scratch_postgresql(f"t_{uuid.uuid4().hex[:12]}"):
        yield _database("postgresql", url, tmp_path)


def _mysql(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    for url in _scratch_mysql(f"t_{uuid.uuid4().hex[:12]}"):
        yield _database("mysql", url, tmp_path)


BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], Iterator[Backend]]] = {
    "fakeredis": _fakeredis,
    "redis": _redis,
    "redis-cluster": _redis_cluster,
    "sqlite": _sqlite,
    "postgresql": _postgresql,
    "mysql": _mysql,
}


@pytest.fixture(params=list(BACKENDS))
def driver_under_test(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DriverUnderTest]:
    """The same test against every backend: fakeredis, Redis, a Redis Cluster, and the database driver on each database."""
    for backend in BACKENDS[request.param](request, tmp_path):
        dut = DriverUnderTest(request.param, backend)
        try:
            yield dut
        finally:
            dut.close()
