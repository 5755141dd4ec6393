"""The redis driver on a real Redis Cluster (three masters, three replicas; tests/cluster/servers.py).

The driver contract and the operator backend run on the cluster in tests/contract (backend
``redis-cluster``). Here: the priority model, the key scheme that spreads queues over the cluster,
the take without reservations (BRPOP, promote.lua), wait_replicas, and two priority lists on two
slots served by two workers at the same time.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from oxide.config import ConnectionConfig
from oxide.drivers.keyspace import key_slot
from oxide.drivers.redis import RedisDriver, connect
from oxide.drivers.redis_topology import NotReplicated
from oxide.ops import MetricDeltas, WorkerRecord
from oxide.ops.redis_ops import RedisOps
from tests.cluster.servers import LocalCluster
from tests.hypothesis_profiles import examples, steps
from tests.integration.worker_procs import recorded, start_worker, tick, wait_until, worker_env
from tests.priority_model import PriorityMachine

pytestmark = [pytest.mark.redis, pytest.mark.usefixtures("isolated_cwd")]


def cluster_driver(cluster: LocalCluster, prefix: str, **settings_: Any) -> RedisDriver:
    return RedisDriver(
        ConnectionConfig(name="c", driver="redis", url=cluster.url, prefix=prefix, poll_interval_secs=0.01, **settings_)
    )


@pytest.fixture
def spread_queues(redis_cluster: LocalCluster, key_prefix: str) -> Iterator[list[str]]:
    """Queue names of this test, under the default prefix: on a cluster each is a hash tag of its own."""
    names = [f"{key_prefix}{n}" for n in range(12)]
    yield names
    client = connect(redis_cluster.url)
    try:
        for name in names:
            keys = list(client.scan_iter(match=f"oxide:queue:{{{name}}}*", count=1000))
            if keys:
                client.delete(*keys)
    finally:
        client.close()


def test_priority_ordering_on_the_cluster(redis_cluster: LocalCluster, cluster_prefix: str, key_prefix: str) -> None:
    runs = itertools.count()
    driver = cluster_driver(redis_cluster, cluster_prefix)

    def fresh() -> PriorityMachine:
        return PriorityMachine(driver.client, f"{key_prefix}{next(runs)}-", block_on_empty=False, driver=driver)

    try:
        run_state_machine_as_test(
            fresh, settings=settings(max_examples=examples(15), stateful_step_count=steps(25), deadline=None)
        )
    finally:
        driver.close()


def test_without_a_tag_in_the_prefix_queues_spread_over_the_masters(
    redis_cluster: LocalCluster, spread_queues: list[str]
) -> None:
    driver = cluster_driver(redis_cluster, "oxide:queue:")
    ops = RedisOps(driver.config, client=driver.client, namespace=spread_queues[0])
    try:
        for queue in spread_queues:
            driver.push(queue, f"job-{queue}")
            driver.later(queue, [f"later-{queue}"], 60)
        masters = {redis_cluster.master_of(f"oxide:queue:{{{q}}}").port for q in spread_queues}
        assert len(masters) >= 2, "twelve queues hashed to one master"
        for queue in spread_queues:
            delivery = driver.pop([queue], 0.01)
            assert delivery is not None
            assert delivery.body == f"job-{queue}".encode()
            assert driver.ack(delivery)
        # The operator keys of every queue and of the connection live on slots of their own.
        ops.pause(spread_queues[1], None)
        ops.beat(
            WorkerRecord(id="w", host="h", pid=1, connection="c", queues=tuple(spread_queues), started_at=1.0),
            MetricDeltas(),
            spread_queues,
        )
        stats = {s.queue: s for s in ops.stats(spread_queues)}
        assert all((s.ready, s.reserved, s.delayed) == (0, 0, 1) for s in stats.values())
        assert set(ops.paused(spread_queues)) == {spread_queues[1]}
        assert set(spread_queues) <= set(ops.queues())
        assert [w.id for w in ops.workers()] == ["w"]
        assert ops.clear(spread_queues[2]) == 1
    finally:
        ops.forget_worker("w")
        ops.resume(spread_queues[1])
        driver.close()


def test_without_reservations_the_take_is_a_brpop_and_delayed_jobs_are_promoted(
    redis_cluster: LocalCluster, cluster_prefix: str, key_prefix: str
) -> None:
    driver = cluster_driver(redis_cluster, cluster_prefix, visibility_timeout_secs=0)
    high, low = f"{key_prefix}high", f"{key_prefix}low"
    try:
        driver.push_many(low, ["l1"])
        driver.later(high, ["h-later"], 0.05)
        driver.push(high, "h1")
        time.sleep(0.1)
        taken = [driver.pop([high, low], 0.05) for _ in range(3)]
        assert [(d.queue, d.body) for d in taken if d is not None] == [(high, b"h1"), (high, b"h-later"), (low, b"l1")]
        assert driver.pop([high, low], 0.05) is None
    finally:
        driver.close()


def test_wait_replicas_returns_once_a_replica_has_the_push_and_says_when_none_could(
    redis_cluster: LocalCluster, cluster_prefix: str, key_prefix: str
) -> None:
    queue = f"{key_prefix}q"
    durable = cluster_driver(redis_cluster, cluster_prefix, wait_replicas=1)
    greedy = cluster_driver(redis_cluster, cluster_prefix, wait_replicas=2, wait_timeout_secs=0.05)
    try:
        durable.push_many(queue, ["a", "b"])
        durable.later(queue, ["c"], 0.01)
        # Each master has one replica: asking for two cannot be met, and the caller hears of it.
        with pytest.raises(NotReplicated, match=r"1 of 2 replicas confirmed within 50 ms"):
            greedy.push(queue, "d")
        replica = next(
            n
            for n in redis_cluster.nodes
            if n.alive and n not in redis_cluster.masters() and _has_key(n, queue, durable)
        )
        with replica.client() as client:
            client.execute_command("READONLY")
            assert client.lrange(durable.space.base(queue), 0, -1) == [b"d", b"b", b"a"]
        assert durable.size(queue) == 3  # the push that was not confirmed is queued all the same
    finally:
        durable.close()
        greedy.close()


def _has_key(node: Any, queue: str, driver: RedisDriver) -> bool:
    with node.client() as client:
        slot = key_slot(driver.space.base(queue))
        return bool(client.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot))


def test_two_priority_lists_on_two_slots_are_served_by_two_workers_at_once(
    redis_cluster: LocalCluster, key_prefix: str, tmp_path: Path
) -> None:
    # Two connections on the same cluster, their hash tags on two different masters.
    tags = iter(f"{key_prefix}{n}" for n in itertools.count())
    first = next(tags)
    second = next(t for t in tags if redis_cluster.master_of(f"{{{t}}}") is not redis_cluster.master_of(f"{{{first}}}"))
    config = tmp_path / "config"
    config.mkdir()
    blocks = "".join(
        f'[connections.{name}]\ndriver = "redis"\nurl = "{redis_cluster.url}"\nprefix = "oxide:queue:{{{tag}}}:"\n'
        "block_timeout_secs = 1\n\n"
        for name, tag in (("web", first), ("mail", second))
    )
    (config / "queue.toml").write_text(f'default = "web"\n\n{blocks}[failed]\ndriver = "none"\n', encoding="utf-8")
    drivers = {}
    from oxide.config import load_config

    loaded = load_config(config, environ={})
    for name in ("web", "mail"):
        drivers[name] = RedisDriver(loaded.connection(name))
    workers = []
    try:
        for name in ("web", "mail"):
            drivers[name].push_many("low", [tick(f"{name}-low-{n}", sleep_ms=300) for n in range(3)])
            drivers[name].push_many("high", [tick(f"{name}-high-{n}", sleep_ms=300) for n in range(3)])
            env = worker_env("", OXIDE_TEST_RECORD_FILE=str(tmp_path / f"{name}.txt"), QUEUE_CONNECTION=name)
            workers.append(
                start_worker(
                    tmp_path,
                    env,
                    "tests.integration.worker_apps:recorder_app",
                    f"--connection={name}",
                    "--queue=high,low",
                    "--stop-when-empty",
                    log_name=f"{name}.log",
                )
            )
        # Each worker has 1.8 s of work (six jobs of 300 ms): at some moment both are part-way through.
        counts = {name: lambda n=name: len(recorded(tmp_path / f"{n}.txt")) for name in ("web", "mail")}
        wait_until(lambda: all(0 < count() < 6 for count in counts.values()), "both workers to be mid-way at once")
        for worker in workers:
            assert worker.wait(60) == 0, worker.log
        for name in ("web", "mail"):
            expected = [f"{name}-high-{n}" for n in range(3)] + [f"{name}-low-{n}" for n in range(3)]
            assert recorded(tmp_path / f"{name}.txt") == expected
    finally:
        for worker in workers:
            worker.kill()
        for driver in drivers.values():
            for queue in ("high", "low"):
                driver.client.delete(*[driver.space.base(queue) + s for s in ("", ":reserved", ":notify", ":crashes")])
            driver.close()


def test_failures_parked_on_the_cluster_live_beside_their_queue_and_drain(
    redis_cluster: LocalCluster, spread_queues: list[str]
) -> None:
    from oxide.drivers.keyspace import keyspace_of
    from oxide.failed.parking import RedisParking
    from tests.unit.test_failed_parking import FakeStore, failure

    space = keyspace_of("oxide:queue:", redis_cluster.url)
    client = connect(redis_cluster.url)
    parking = RedisParking(client, "cluster", space)
    try:
        first, second = spread_queues[:2]
        parking.park(failure("u1", first))
        parking.park(failure("u2", second))
        parking.park(failure("u3", first))
        assert parking.keys() == sorted([f"oxide:queue:{{{first}}}:failed", f"oxide:queue:{{{second}}}:failed"])
        assert key_slot(parking.key(first)) == space.slot(first)  # beside the queue's own keys
        assert parking.count() == 3
        store = FakeStore()
        assert parking.drain(store) == 3
        assert sorted(store.rows) == ["u1", "u2", "u3"]
        assert parking.count() == 0
    finally:
        client.close()


def test_a_slot_moved_to_another_master_mid_drain_loses_nothing(
    redis_cluster: LocalCluster, cluster_prefix: str, key_prefix: str
) -> None:
    """MOVED after the move, ASK or TRYAGAIN while the slot is half moved: a take or push either
    works or is an outage (ConnectionUnavailable) to retry; nothing is lost, the order holds."""
    from oxide.errors import ConnectionUnavailable

    driver = cluster_driver(redis_cluster, cluster_prefix)
    high, low = f"{key_prefix}high", f"{key_prefix}low"
    taken: list[bytes] = []
    outages: list[str] = []

    def take_one() -> None:
        try:
            delivery = driver.pop([high, low], 0.01)
        except ConnectionUnavailable as exc:
            outages.append(str(exc))
            return
        assert delivery is not None
        assert driver.ack(delivery)
        taken.append(delivery.body)

    try:
        driver.push_many(high, [f"h{n}" for n in range(10)])
        driver.push_many(low, [f"l{n}" for n in range(10)])
        take_one()
        slot = key_slot(driver.space.base(high))
        source = redis_cluster.master_of(driver.space.base(high))
        target = next(m for m in redis_cluster.masters() if m is not source)
        # Half moved: the high queue's list is on the target, the low queue's still on the source.
        mid: list[int] = []

        def half_moved() -> None:
            for _ in range(3):
                take_one()
            mid.append(len(outages))

        redis_cluster.move_slot(slot, target, [driver.space.base(high)], half_moved)
        assert redis_cluster.master_of(driver.space.base(high)) is target
        while len(taken) < 20:
            take_one()
            assert len(outages) < 10, outages
    finally:
        driver.close()
    assert taken == [f"h{n}".encode() for n in range(10)] + [f"l{n}".encode() for n in range(10)]
    # The take names keys now on two masters: the cluster cannot run it, and says "try again".
    assert mid == [3]
    assert all("redis connection 'c'" in o for o in outages)
