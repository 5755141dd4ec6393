"""The driver's lane (oxide/drivers/lane.py) on a real server: its connections are connected the way
the client's own pool connects them, and made anew after a failure or a close.

A connection class may do its own work in ``connect()``: Sentinel's asks the sentinels where the
master is. A connection that connected by itself on its first send would skip that and reach the
default host instead, so the lane must call ``connect()`` on every connection it makes, and make a
new one (never reuse a dropped one) after a failure.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
import redis

from oxide.drivers.lane import Lane, packed, packed_head

pytestmark = pytest.mark.redis


class CountingConnection(redis.Connection):
    """A connection that counts the calls to its own connect()."""

    connects: ClassVar[list[int]] = []

    def connect(self) -> None:
        CountingConnection.connects.append(id(self))
        super().connect()


@pytest.fixture
def counting_client(redis_server_url: str) -> Any:
    CountingConnection.connects = []
    pool = redis.ConnectionPool.from_url(redis_server_url, connection_class=CountingConnection)
    client = redis.Redis(connection_pool=pool)
    yield client
    client.close()


def ping(lane: Lane) -> Any:
    return lane.call(packed(1, packed_head("PING"), ()))


def test_each_connection_is_connected_by_its_class_and_made_anew_after_a_failure_or_close(
    counting_client: Any, real_redis: Any
) -> None:
    lane = Lane(counting_client)
    assert ping(lane) in (b"PONG", "PONG")
    assert len(CountingConnection.connects) == 1
    first = CountingConnection.connects[0]
    assert ping(lane) in (b"PONG", "PONG")
    assert CountingConnection.connects == [first]  # one connection per thread, kept while it works

    # The server drops the lane's connection: the call fails, and the next one makes a new connection.
    own_id = lane.call(packed(2, packed_head("CLIENT", "ID"), ()))
    assert real_redis.client_kill_filter(_id=own_id) == 1
    with pytest.raises(redis.ConnectionError):
        ping(lane)
    assert ping(lane) in (b"PONG", "PONG")
    assert len(CountingConnection.connects) == 2
    assert CountingConnection.connects[1] != first

    lane.close()
    assert ping(lane) in (b"PONG", "PONG")
    assert len(CountingConnection.connects) == 3
    lane.close()


def test_a_script_the_server_forgot_is_loaded_again_on_the_lanes_own_connection(
    counting_client: Any, real_redis: Any, key_prefix: str
) -> None:
    lane = Lane(counting_client)
    key = f"oxide:queue:{key_prefix}lane"
    script = lane.script("return redis.call('INCR', KEYS[1])", [key], key_count=1)
    try:
        assert script([]) == 1
        real_redis.script_flush()
        assert script([]) == 2  # NOSCRIPT, loaded again, run
        assert real_redis.get(key) == b"2"
    finally:
        real_redis.delete(key)
        lane.close()
