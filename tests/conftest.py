"""Shared fixtures: real servers (skipped locally when absent, failures in CI) and fakes.

Isolation: Redis tests use database index 13 (``OXIDE_TEST_REDIS_URL``) and queue
names with a per-test random prefix; they delete only the keys under that prefix.
Set ``OXIDE_REQUIRE_SERVICES=1`` to turn a missing server into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import settings

from oxide.config import ConnectionConfig
from oxide.drivers.redis import KEY_PREFIX, RedisDriver

# `pytest --hypothesis-profile=deep`: many more examples for the property tests (minutes, not seconds).
# Registered here, in the root conftest, so that it exists before the option is read.
settings.register_profile("deep", max_examples=2_000, deadline=None)

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
