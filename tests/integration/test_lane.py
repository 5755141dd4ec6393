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

from oxide.drivers.lane import Lane, _wire, packed, packed_head

pytestmark = pytest.mark.redis

try:
    import hiredis  # noqa: F401

    HIREDIS = True
except ImportError:
    HIREDIS = False


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


@pytest.fixture(params=["direct", "redis-py"])
def lane_of(request: Any) -> Any:
    """Lanes that read and write the connection's socket directly where they can (with hiredis), or
    that always take redis-py's send_packed_command and read_response."""

    def make(client: Any) -> Lane:
        lane = Lane(client)
        lane._direct = request.param == "direct"
        return lane

    return make


def test_each_connection_is_connected_by_its_class_and_made_anew_after_a_failure_or_close(
    counting_client: Any, real_redis: Any, lane_of: Any
) -> None:
    lane = lane_of(counting_client)
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
    counting_client: Any, real_redis: Any, key_prefix: str, lane_of: Any
) -> None:
    lane = lane_of(counting_client)
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


@pytest.mark.skipif(not HIREDIS, reason="the direct path reads with hiredis; install oxide-queue[hiredis]")
def test_the_lane_reads_and_writes_a_plain_connection_directly_and_a_sentinels_through_redis_py(
    counting_client: Any,
) -> None:
    lane = Lane(counting_client)
    assert ping(lane) in (b"PONG", "PONG")
    assert lane._local.held[2] is not None  # the direct path is the one measured (docs/performance.md)

    class OwnReads(redis.Connection):
        """As Sentinel's connection: it reads replies its own way, which the lane must not skip."""

        def read_response(self, *args: Any, **kwargs: Any) -> Any:
            return super().read_response(*args, **kwargs)

    own = OwnReads(**counting_client.connection_pool.connection_kwargs)
    own.connect()
    try:
        assert _wire(own) is None
    finally:
        own.disconnect()
    lane.close()


def test_an_error_reply_raises_redis_pys_error_and_keeps_the_connection(
    counting_client: Any, real_redis: Any, key_prefix: str, lane_of: Any
) -> None:
    lane = lane_of(counting_client)
    key = f"oxide:queue:{key_prefix}lane-wrongtype"
    real_redis.lpush(key, "x")
    try:
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            lane.call(packed(2, packed_head("GET", key), ()))
        with pytest.raises(redis.exceptions.NoScriptError):
            lane.call(packed(3, packed_head("EVALSHA", "0" * 40, 0), ()))
        assert ping(lane) in (b"PONG", "PONG")
        assert lane.call(packed(4, packed_head("LRANGE", key, 0, -1), ())) in ([b"x"], ["x"])
        assert len(CountingConnection.connects) == 1  # the server answered: no new connection
    finally:
        real_redis.delete(key)
        lane.close()


def test_a_read_past_the_socket_timeout_raises_redis_pys_timeout_and_the_next_call_reconnects(
    redis_server_url: str, key_prefix: str, lane_of: Any
) -> None:
    pool = redis.ConnectionPool.from_url(redis_server_url, connection_class=CountingConnection, socket_timeout=0.2)
    client = redis.Redis(connection_pool=pool)
    CountingConnection.connects = []
    lane = lane_of(client)
    try:
        with pytest.raises(redis.TimeoutError):  # the server holds the reply for a second
            lane.call(packed(3, packed_head("BLPOP", f"oxide:queue:{key_prefix}lane-never", 1), ()))
        assert ping(lane) in (b"PONG", "PONG")  # not the late reply of the BLPOP: a new connection
        assert len(CountingConnection.connects) == 2
    finally:
        lane.close()
        client.close()


def test_a_resp3_push_before_a_reply_is_handed_to_redis_py_and_the_reply_returned(
    redis_server_url: str, real_redis: Any, key_prefix: str, lane_of: Any
) -> None:
    # Client-side caching's invalidation is a push: the server sends it on the lane's own connection
    # when a key the connection read changes, and it arrives before the reply to the next command.
    client = redis.Redis.from_url(redis_server_url, protocol=3)
    lane = lane_of(client)
    key = f"oxide:queue:{key_prefix}lane-tracked"
    real_redis.set(key, "1")
    try:
        assert lane.call(packed(3, packed_head("CLIENT", "TRACKING", "ON"), ())) in (b"OK", "OK")
        assert lane.call(packed(2, packed_head("GET", key), ())) in (b"1", "1")
        real_redis.set(key, "2")  # the server pushes the invalidation of the key to the lane's connection
        own_id = lane.call(packed(2, packed_head("CLIENT", "ID"), ()))
        assert isinstance(own_id, int)
        assert lane.call(packed(2, packed_head("GET", key), ())) in (b"2", "2")
        assert ping(lane) in (b"PONG", "PONG")
    finally:
        real_redis.delete(key)
        lane.close()
        client.close()
