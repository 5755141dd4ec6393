"""Shared fixtures: real servers (skipped locally when absent, failures in CI) and fakes.

Isolation: Redis tests use database index 13 (``OXIDE_TEST_REDIS_URL``) and queue
names with a per-test random prefix; they delete only the keys under that prefix.
SQL tests take ``scratch_db``: a SQLite file, PostgreSQL schema or MariaDB database
of their own (``OXIDE_TEST_POSTGRES_URL``, ``OXIDE_TEST_MYSQL_URL``), dropped after.
Set ``OXIDE_REQUIRE_SERVICES=1`` to turn a missing server into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from oxide.config import ConnectionConfig
from oxide.drivers.redis import KEY_PREFIX, RedisDriver

from . import hypothesis_profiles

hypothesis_profiles.load()

REQUIRE_SERVICES = os.environ.get("OXIDE_REQUIRE_SERVICES") == "1"
REDIS_URL = os.environ.get("OXIDE_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
REDIS_START = "start one with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no"


def service_missing(what: str, how: str) -> None:
    """Skip (locally) or fail (``OXIDE_REQUIRE_SERVICES=1``) a test whose server is not there."""
    message = f"{what} is not reachable; {how}"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message} (OXIDE_REQUIRE_SERVICES=1: a missing service is a failure)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_server_url() -> str:
    """The URL of the real Redis used by tests, after checking it answers."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        service_missing(f"Redis at {REDIS_URL} ({exc})", REDIS_START)
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def key_prefix() -> str:
    """A queue-name prefix unique to this test: every key the test makes starts with oxide:queue:<prefix>."""
    return f"t{uuid.uuid4().hex[:12]}-"


def _cleanup(client: Any, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{KEY_PREFIX}{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def real_redis(redis_server_url: str, key_prefix: str) -> Iterator[Any]:
    """A redis-py client on the real server; this test's keys are deleted afterwards."""
    import redis

    client = redis.Redis.from_url(redis_server_url)
    yield client
    _cleanup(client, key_prefix)
    client.close()


@pytest.fixture
def fake_redis() -> Iterator[Any]:
    """A fakeredis client with Lua, private to the test."""
    import fakeredis

    client = fakeredis.FakeRedis()
    yield client
    client.close()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real Redis Cluster of three masters and three replicas (tests/cluster/servers.py), once per session."""
    from tests.cluster.servers import LocalCluster, binaries

    found = binaries()
    if found is None:
        service_missing(
            "redis-server and redis-cli (to start a local Redis Cluster)", "install the redis-server package"
        )
    assert found is not None
    cluster = LocalCluster.start(*found, tmp_path_factory.mktemp("cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real master, replica and three sentinels (tests/cluster/servers.py), once per session."""
    from tests.cluster.servers import LocalSentinel, binaries

    found = binaries()
    if found is None:
        service_missing("redis-server (to start a local Sentinel group)", "install the redis-server package")
    assert found is not None
    group = LocalSentinel.start(found[0], tmp_path_factory.mktemp("sentinel"))
    try:
        yield group
    finally:
        group.stop()


@pytest.fixture
def cluster_prefix(redis_cluster: Any, key_prefix: str) -> Iterator[str]:
    """A key prefix whose hash tag is private to this test, on the session's cluster; its keys go after."""
    from oxide.drivers.redis import connect

    prefix = f"oxide:queue:{{{key_prefix}}}:"
    yield prefix
    client = connect(redis_cluster.url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)  # one hash tag: one slot, one command
    finally:
        client.close()


def redis_driver_for(client: Any, name: str = "redis", **settings: Any) -> RedisDriver:
    """A RedisDriver over an existing client (real or fake)."""
    return RedisDriver(ConnectionConfig(name=name, driver="redis", **settings), client=client)


@pytest.fixture(params=["fakeredis", "redis"])
def any_redis(request: pytest.FixtureRequest) -> Any:
    """The same test against fakeredis and the real server."""
    if request.param == "fakeredis":
        return request.getfixturevalue("fake_redis")
    return request.getfixturevalue("real_redis")


@pytest.fixture
def make_queue_names(key_prefix: str) -> Callable[..., list[str]]:
    """``make_queue_names("high", "low")`` -> names unique to this test."""

    def make(*names: str) -> list[str]:
        return [f"{key_prefix}{n}" for n in names]

    return make


# -- SQL databases: one behaviour suite, every backend -------------------------------------------

POSTGRES_URL = os.environ.get("OXIDE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("OXIDE_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")


@dataclass(frozen=True)
class ScratchDatabase:
    """An empty database of one test: a SQLite file, a PostgreSQL schema or a MariaDB database."""

    dialect: str
    url: str  # for database.toml; it reaches this test's schema only
    root: Path  # the application directory (relative SQLite paths are under it)


def _scratch_postgresql(name: str) -> Iterator[str]:
    import psycopg

    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        service_missing(f"PostgreSQL at {POSTGRES_URL} ({exc})", "start it, or set OXIDE_TEST_POSTGRES_URL")
    with admin:
        admin.execute(f'CREATE SCHEMA "{name}"')
        try:
            # libpq reads options= from the URL: every connection of the test lands in its own schema.
            yield f"{POSTGRES_URL}?options=-csearch_path%3D{name}"
        finally:
            admin.execute(f'DROP SCHEMA "{name}" CASCADE')


def _scratch_mysql(name: str) -> Iterator[str]:
    import pymysql

    from oxide.config import parse_database_url

    url = parse_database_url(MYSQL_URL)
    try:
        admin = pymysql.connect(
            host=url.host, port=url.port or 3306, user=url.user, password=url.password or "", connect_timeout=3
        )
    except pymysql.Error as exc:
        service_missing(f"MariaDB/MySQL at {MYSQL_URL} ({exc})", "start it, or set OXIDE_TEST_MYSQL_URL")
    with admin, admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        try:
            yield MYSQL_URL.rsplit("/", 1)[0] + f"/{name}"
        finally:
            cursor.execute(f"DROP DATABASE `{name}`")


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def scratch_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ScratchDatabase]:
    """The same test against SQLite, PostgreSQL and MariaDB, each time in a schema of its own, dropped after."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        yield ScratchDatabase("sqlite", f"sqlite:///{tmp_path / 'database.sqlite'}", tmp_path)
        return
    make = _scratch_postgresql if request.param == "postgresql" else _scratch_mysql
    for url in make(name):
        yield ScratchDatabase(request.param, url, tmp_path)


@pytest.fixture
def isolated_cwd(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty working directory, so that no ``.env`` of the developer's leaks into config."""
    directory = tmp_path_factory.mktemp("cwd")
    monkeypatch.chdir(directory)
    return directory
