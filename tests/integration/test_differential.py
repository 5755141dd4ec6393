"""Differential test: the same random operations on fakeredis and on the real Redis give the same results.

The property suite trusts fakeredis; this is where that trust is earned. Each
example runs one operation sequence on a private fakeredis server and on the
real server (under this test's key prefix), recording every result, then
compares the records and the lists left behind.
"""

from __future__ import annotations

import itertools
from typing import Any

import fakeredis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from oxide.drivers.redis import RedisDriver, queue_key
from tests.conftest import redis_driver_for

pytestmark = pytest.mark.redis

QUEUES = ("q0", "q1", "q2")
queue_index = st.sampled_from(range(len(QUEUES)))
bodies = st.text(max_size=12)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("push"), queue_index, bodies),
        st.tuples(st.just("push_many"), queue_index, st.lists(bodies, max_size=4)),
        st.tuples(st.just("raw_lpush"), queue_index, st.binary(max_size=12)),  # any bytes, as another producer
        st.tuples(st.just("pop"), st.lists(queue_index, min_size=1, max_size=4)),
        st.tuples(st.just("size"), queue_index),
    ),
    max_size=40,
)


def run(ops: list[tuple[Any, ...]], driver: RedisDriver, client: Any, names: list[str], *, fake: bool) -> list[Any]:
    """Apply ``ops`` and return what each one observed, plus the final lists and which keys exist."""
    record: list[Any] = []
    for op in ops:
        kind = op[0]
        if kind == "push":
            driver.push(names[op[1]], op[2])
            record.append(kind)
        elif kind == "push_many":
            driver.push_many(names[op[1]], op[2])
            record.append(kind)
        elif kind == "raw_lpush":
            record.append((kind, client.lpush(queue_key(names[op[1]]), op[2])))
        elif kind == "size":
            record.append((kind, driver.size(names[op[1]])))
        else:
            listed = [names[i] for i in op[1]]
            sizes = [driver.size(q) for q in listed]
            if sum(sizes) == 0 and not fake:
                # Real Redis rounds a blocking timeout up to its event-loop tick (about 100 ms); the
                # sizes just read say what BRPOP would find, and fakeredis below really blocks.
                record.append((kind, sizes, None))
                continue
            delivery = driver.pop(listed, 0.001 if sum(sizes) == 0 else 5)
            taken = None if delivery is None else (names.index(delivery.queue), delivery.body)
            record.append((kind, sizes, taken))
    for name in names:
        key = queue_key(name)
        record.append(("final", client.exists(key), client.lrange(key, 0, -1)))
    return record


def test_fakeredis_and_real_redis_agree(real_redis: Any, key_prefix: str) -> None:
    examples = itertools.count()

    @given(operations)
    def same_results(ops: list[tuple[Any, ...]]) -> None:
        names = [f"{key_prefix}{next(examples)}-{q}" for q in QUEUES]
        fake_client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
        try:
            expected = run(ops, redis_driver_for(fake_client), fake_client, names, fake=True)
            actual = run(ops, redis_driver_for(real_redis), real_redis, names, fake=False)
        finally:
            real_redis.delete(*[queue_key(n) for n in names])
            fake_client.close()
        assert actual == expected

    same_results()


def test_the_comparison_sees_a_difference(real_redis: Any, key_prefix: str) -> None:
    # The differential harness must be able to fail: the same operations with one extra push differ.
    names = [f"{key_prefix}{q}" for q in QUEUES]
    ops: list[tuple[Any, ...]] = [("push", 0, "a"), ("pop", [1, 0])]
    fake_client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    try:
        fake_client.lpush(queue_key(names[0]), b"extra")
        expected = run(ops, redis_driver_for(fake_client), fake_client, names, fake=True)
        actual = run(ops, redis_driver_for(real_redis), real_redis, names, fake=False)
    finally:
        real_redis.delete(*[queue_key(n) for n in names])
        fake_client.close()
    assert actual != expected
