"""Every Redis command the package sends, on the real server the tests point at.

The minimum supported server is Redis 6.2 (docs/redis-compatibility.md has the table). CI
runs this module against Redis 6.2, 7 and the latest; ``.ci/check-deploy`` runs it against
a Redis 6.2 server too. Each test goes through the package's own code paths, so a command
or argument form that an older server lacks fails here: BRPOP with a fractional timeout,
multi-value LPUSH/ZREM/HDEL, ZRANGEBYSCORE with LIMIT, TIME followed by writes inside a
script (the scripts take the server's clock when no clock is passed, as in production),
EVALSHA falling back to SCRIPT LOAD after a script-cache flush, SCAN with MATCH and COUNT,
and LINDEX/LREM for parked failures.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from oxide.config import ConnectionConfig
from oxide.drivers.redis import RedisDriver
from oxide.drivers.reservations import keys_of
from oxide.failed import FailedJob
from oxide.failed.parking import RedisParking

pytestmark = pytest.mark.redis

MIN_VERSION = (6, 2)


def driver(client: Any, **settings: Any) -> RedisDriver:
    """A driver on the real server with the server's own clock (no clock_ms), as a deployment runs."""
    return RedisDriver(ConnectionConfig(name="redis", driver="redis", **settings), client=client)


def test_the_server_is_one_we_support(real_redis: Any) -> None:
    version = tuple(int(part) for part in real_redis.info("server")["redis_version"].split(".")[:2])
    assert version >= MIN_VERSION, f"Redis {version} is older than the minimum {MIN_VERSION}"


def test_plain_lists_lpush_many_brpop_in_priority_order_and_llen(real_redis: Any, make_queue_names: Any) -> None:
    high, low = make_queue_names("high", "low")
    plain = driver(real_redis, visibility_timeout_secs=0)
    plain.push_many(low, ["l1", "l2"])  # one LPUSH with two values
    plain.push(high, "h1")
    assert (plain.size(high), plain.size(low)) == (1, 2)
    taken = [plain.pop([high, low], 0.5) for _ in range(3)]
    assert [(d.queue, d.body) for d in taken if d] == [(high, b"h1"), (low, b"l1"), (low, b"l2")]


def test_brpop_takes_a_fractional_timeout(real_redis: Any, make_queue_names: Any) -> None:
    # Before Redis 6.0 a timeout of 0.3 is an error ("timeout is not an integer or out of range").
    (queue,) = make_queue_names("empty")
    plain = driver(real_redis, visibility_timeout_secs=0)
    started = time.monotonic()
    assert plain.pop([queue], 0.3) is None
    waited = time.monotonic() - started
    assert 0.2 <= waited < 0.9, f"BRPOP 0.3 waited {waited:.2f}s"


def test_delayed_jobs_move_with_the_servers_clock(real_redis: Any, make_queue_names: Any) -> None:
    (queue,) = make_queue_names("delayed")
    plain = driver(real_redis, visibility_timeout_secs=0)
    plain.later(queue, ["d1", "d2"], 0.2)  # later.lua: TIME, then ZADD
    assert real_redis.zcard(keys_of(queue)[2]) == 2
    assert plain.pop([queue], 0.05) is None  # promote.lua: not due yet
    time.sleep(0.3)
    taken = [plain.pop([queue], 0.5) for _ in range(2)]  # promote.lua: ZRANGEBYSCORE LIMIT, ZREM, LPUSH
    assert sorted(d.body for d in taken if d) == [b"d1", b"d2"]


def test_reservations_reserve_ack_release_extend(real_redis: Any, make_queue_names: Any) -> None:
    high, low = make_queue_names("high", "low")
    reserving = driver(real_redis, visibility_timeout_secs=30)
    reserving.push_many(low, ["j1", "j2"])  # LPUSH; the queue was empty: LPUSH notify, LTRIM
    first = reserving.pop([high, low], 0.5)  # reserve.lua: TIME, ZRANGEBYSCORE LIMIT, RPOP, ZADD, HGET
    assert first is not None
    assert (first.queue, first.body, first.expirations) == (low, b"j1", 0)
    assert reserving.extend(first)  # extend.lua: ZSCORE, TIME, ZADD
    assert reserving.ack(first)  # ack.lua: ZREM, HDEL
    assert not reserving.ack(first)

    second = reserving.pop([high, low], 0.5)
    assert second is not None
    assert second.body == b"j2"
    assert reserving.release(second, "j2-again", 0)  # release.lua, at once: ZREM, HDEL, LPUSH, LTRIM
    third = reserving.pop([high, low], 0.5)
    assert third is not None
    assert third.body == b"j2-again"
    assert reserving.release(third, "j2-later", 0.2)  # release.lua with a delay: TIME, ZADD
    assert reserving.pop([high, low], 0.05) is None
    time.sleep(0.3)
    fourth = reserving.pop([high, low], 0.5)
    assert fourth is not None
    assert fourth.body == b"j2-later"
    assert reserving.ack(fourth)


def test_batched_take_fused_ack_and_give_back(real_redis: Any, make_queue_names: Any) -> None:
    high, low = make_queue_names("high", "low")
    reserving = driver(real_redis, visibility_timeout_secs=30)
    reserving.push_many(low, ["b1", "b2", "b3", "b4"])
    held, batch = reserving.take([high, low], 0.5, limit=3)  # reserve.lua: RPOP with a count, one ZADD of pairs
    assert (held, [d.body for d in batch]) == ([], [b"b1", b"b2", b"b3"])
    held, more = reserving.take([high, low], 0.5, limit=1, done=batch[:1])  # reserve.lua acknowledges: ZREM, HDEL
    assert (held, [d.body for d in more]) == ([True], [b"b4"])
    assert reserving.give_back([*batch[1:], *more]) == 3  # give_back.lua: ZREM, RPUSH, LPUSH, LTRIM
    held, again = reserving.take([high, low], 0.5, limit=5)
    assert [d.body for d in again] == [b"b2", b"b3", b"b4"]  # back at the front, in order
    assert [d.expirations for d in again] == [0, 0, 0]
    held, _ = reserving.take([high, low], 0.05, limit=0, done=again)
    assert held == [True, True, True]
    assert real_redis.zcard(keys_of(low)[1]) == 0


def test_an_expired_reservation_returns_to_the_front_counted(real_redis: Any, make_queue_names: Any) -> None:
    (queue,) = make_queue_names("crashy")
    reserving = driver(real_redis, visibility_timeout_secs=0.2)
    reserving.push_many(queue, ["lost", "next"])
    held = reserving.pop([queue], 0.5)
    assert held is not None
    assert held.body == b"lost"
    time.sleep(0.3)  # the holder "died": its deadline passes
    again = reserving.pop([queue], 0.5)  # reserve.lua: expired -> RPUSH to the front, HINCRBY crashes
    assert again is not None
    assert (again.body, again.expirations) == (b"lost", 1)
    assert not reserving.extend(held)  # the dead holder's reservation is not brought back
    assert reserving.ack(again)


def test_the_busy_take_reads_a_crash_count_and_drops_it_with_the_acknowledgement(
    real_redis: Any, make_queue_names: Any
) -> None:
    high, queue = make_queue_names("high", "crashy-busy")
    reserving = driver(real_redis, visibility_timeout_secs=30)
    reserving.push_many(queue, ["lost", "next"])
    real_redis.hset(keys_of(queue)[4], "lost", 1)  # as reserve.lua leaves a job whose holder died
    # take.lua (the busy take): RPOP per queue, ZADD with the deadline the call brings, HGET
    held, (again,) = reserving.scripts.ack_and_reserve((), [high, queue], migrate=False)
    assert (held, again.body, again.crashes) == ([], b"lost", 1)
    # take.lua acknowledges (ZREM; HDEL, as the job came with a count) and takes the next (count 0)
    held, (following,) = reserving.scripts.ack_and_reserve([again], [high, queue], migrate=False)
    assert (held, following.body, following.crashes) == ([True], b"next", 0)
    assert real_redis.hlen(keys_of(queue)[4]) == 0
    held, none = reserving.scripts.ack_and_reserve([following], [high, queue], migrate=False)
    assert (held, none) == ([True], [])
    assert real_redis.zcard(keys_of(queue)[1]) == 0


def _server_ms(client: Any) -> float:
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) / 1000


def test_the_busy_take_writes_its_deadline_on_the_servers_clock(real_redis: Any, make_queue_names: Any) -> None:
    # The busy take brings its deadline: the server's clock as the driver follows it (TIME once a
    # second, and after each new connection), plus the visibility timeout. Its own clock is another.
    (queue,) = make_queue_names("deadline")
    reserving = driver(real_redis, visibility_timeout_secs=30)
    scripts = reserving.scripts
    reserving.push_many(queue, ["a", "b", "c"])

    def deadline_of_a_busy_take() -> float:
        _held, (job,) = scripts.ack_and_reserve((), [queue], migrate=False)
        score = real_redis.zscore(keys_of(queue)[1], job.member)
        assert score is not None
        return float(score) - 30_000

    before = _server_ms(real_redis)
    taken_at = deadline_of_a_busy_take()
    assert before - 50 <= taken_at <= _server_ms(real_redis) + 50
    # A clock followed wrongly would show here: the driver's notion is set off by an hour...
    scripts._offset_ms -= 3_600_000
    assert deadline_of_a_busy_take() < _server_ms(real_redis) - 3_000_000
    # ...and a new connection (as after a failover, to another server) makes it read the clock again.
    assert scripts.lane is not None
    scripts.lane.close()
    before = _server_ms(real_redis)
    taken_at = deadline_of_a_busy_take()
    assert before - 50 <= taken_at <= _server_ms(real_redis) + 50
    real_redis.delete(keys_of(queue)[0], keys_of(queue)[1])


def test_a_push_wakes_a_worker_only_when_the_queue_was_empty_and_the_woken_pass_it_on(
    real_redis: Any, make_queue_names: Any
) -> None:
    (queue,) = make_queue_names("wake")
    notify = keys_of(queue)[3]
    reserving = driver(real_redis, visibility_timeout_secs=30)
    reserving.push(queue, "w1")  # LPUSH answers 1: LPUSH notify, LTRIM
    reserving.push(queue, "w2")  # LPUSH answers 2: nothing more
    assert real_redis.llen(notify) == 1
    real_redis.delete(notify)
    taken = reserving.scripts.reserve([queue], pass_on=True)  # reserve.lua after a wait: LLEN, LPUSH notify
    assert [job.body for job in taken] == [b"w1"]
    assert real_redis.llen(notify) == 1
    assert reserving.scripts.ack_and_reserve(taken, [queue])[0] == [True]


def test_scripts_are_loaded_again_after_the_script_cache_is_flushed(real_redis: Any, make_queue_names: Any) -> None:
    # A restarted or failed-over server has an empty script cache: EVALSHA answers NOSCRIPT and
    # redis-py loads the script again (SCRIPT LOAD), then retries.
    (queue,) = make_queue_names("flushed")
    reserving = driver(real_redis, visibility_timeout_secs=30)
    reserving.push(queue, "x")
    real_redis.script_flush()
    taken = reserving.pop([queue], 0.5)
    assert taken is not None
    assert taken.body == b"x"
    assert reserving.ack(taken)
    # The busy take's script goes by the driver's lane, which loads it again itself.
    reserving.push(queue, "y")
    real_redis.script_flush()
    _held, busy = reserving.scripts.ack_and_reserve((), [queue], migrate=False)
    assert [job.body for job in busy] == [b"y"]
    assert reserving.scripts.ack_and_reserve(busy, [queue], 0, migrate=False)[0] == [True]


class ListStore:
    """The smallest failed-job store: a list."""

    def __init__(self) -> None:
        self.rows: list[FailedJob] = []

    def log(self, job: FailedJob) -> None:
        self.rows.append(job)


def test_parked_failures_scan_lindex_lrem(real_redis: Any, key_prefix: str) -> None:
    parking = RedisParking(real_redis)
    jobs = [
        FailedJob(f"u-{i}", "redis", f"{key_prefix}q{i % 2}", "e", "l", "{}", "boom", datetime(2026, 1, 1, tzinfo=UTC))
        for i in range(3)
    ]
    for job in jobs:
        parking.park(job)  # LPUSH
    found = parking.keys()  # SCAN MATCH COUNT
    mine = [key for key in found if key.startswith(f"oxide:queue:{key_prefix}")]
    assert len(mine) == 2
    real_redis.lpush(mine[0], b"not a record")
    store = ListStore()
    moved = parking.drain(store)  # LINDEX -1, LREM -1; the unreadable record set aside
    assert {job.uuid for job in store.rows} >= {"u-0", "u-1", "u-2"}
    assert moved >= 3
    assert real_redis.llen(mine[0] + ":unreadable") == 1
    assert all(real_redis.llen(key) == 0 for key in mine)


def test_the_operator_commands_with_the_servers_clock(real_redis: Any, make_queue_names: Any, key_prefix: str) -> None:
    # observe.lua reads TIME then writes (LPUSH marks), and finds marks with LPOS (Redis 6.0.6);
    # a heartbeat is one MULTI with EVALSHA, SET PX, ZADD NX, SADD, HINCRBY/HINCRBYFLOAT and GET.
    from oxide.ops import MetricDeltas, WorkerRecord
    from oxide.ops.redis_ops import RedisOps

    (queue,) = make_queue_names("ops")
    ops = RedisOps(ConnectionConfig(name="redis", driver="redis"), client=real_redis, namespace=key_prefix)
    driver(real_redis).push_many(queue, ["a", "b"])
    [stats] = ops.stats([queue])
    assert (stats.ready, stats.oldest_age_secs is not None) == (2, True)
    real_redis.script_flush()  # a heartbeat after a script-cache flush loads the script again
    deltas = MetricDeltas()
    deltas.add(queue, "L", "done", 0.5)
    worker = WorkerRecord("w", "h", 1, "redis", (queue,), time.time())
    assert ops.beat(worker, deltas, [queue], 5.0).paused == frozenset()
    assert 0 < real_redis.pttl(f"{keys_of(key_prefix)[0]}:worker:w") <= 5000
    ops.pause(queue, 60)
    assert 0 < real_redis.pttl(f"{keys_of(queue)[0]}:paused") <= 60_000
    assert ops.beat(worker, MetricDeltas(), [queue]).paused == frozenset({queue})
    assert [m.counts["done"] for m in ops.metrics() if m.queue == queue] == [1]
    assert queue in ops.queues()
    assert ops.clear(queue) == 2
