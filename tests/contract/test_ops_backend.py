"""The operator backend (oxide.ops), one suite for every backend that keeps jobs: fakeredis, Redis, SQLite,
PostgreSQL, MariaDB. Jobs are pushed and taken through the real drivers; time moves only with the fake clock.
"""

from __future__ import annotations

import pytest

from oxide.drivers.database import DatabaseDriver
from oxide.drivers.redis import RedisDriver
from oxide.ops import BUCKETS_SECS, MetricDeltas, OpsBackend, WorkerRecord
from oxide.ops.presence import InHand, Presence
from oxide.ops.redis_ops import RedisOps, connection_key
from oxide.ops.sql_ops import DatabaseOps
from tests.contract.conftest import DriverUnderTest

EMPTY = 0.01


@pytest.fixture
def dut(driver_under_test: DriverUnderTest) -> DriverUnderTest:
    return driver_under_test


def ops_for(dut: DriverUnderTest) -> OpsBackend:
    """The operator backend on the same store as ``dut.driver``, on the same fake clock."""
    driver = dut.driver
    if isinstance(driver, RedisDriver):
        # The namespace keeps this test's restart mark and registry from every other test's.
        return RedisOps(driver.config, client=driver.client, namespace=dut.backend.prefix, clock_ms=dut.clock)
    assert isinstance(driver, DatabaseDriver)
    return DatabaseOps(driver.config, database=driver.database, clock_ms=dut.clock)


def record(worker_id: str, queues: tuple[str, ...], **fields: object) -> WorkerRecord:
    return WorkerRecord(id=worker_id, host="h", pid=1, connection="c", queues=queues, started_at=1.0, **fields)  # type: ignore[arg-type]


def test_counts_per_state_and_the_age_of_the_front_job(dut: DriverUnderTest) -> None:
    q, other = dut.queues("q", "other")
    ops = ops_for(dut)
    assert [(s.ready, s.reserved, s.delayed, s.oldest_age_secs) for s in ops.stats([q])] == [(0, 0, 0, None)]
    dut.driver.push(q, "a")
    ops.beat(record("w", (q,)), MetricDeltas(), [q])  # a heartbeat sees job a first
    dut.clock.advance(10)
    dut.driver.push_many(q, ["b", "c"])
    dut.driver.later(q, ["d", "e"], 60)
    dut.driver.push(other, "x")
    [stats] = ops.stats([q])
    assert (stats.ready, stats.reserved, stats.delayed, stats.size) == (3, 0, 2, 5)
    assert stats.oldest_age_secs == 10.0
    dut.clock.advance(20)
    assert ops.stats([q])[0].oldest_age_secs == 30.0
    taken = dut.driver.pop([q], EMPTY)
    assert taken is not None
    assert taken.body == b"a"
    [stats] = ops.stats([q])
    # b and c joined 20 s ago (after a, seen at push by the stats read above).
    assert (stats.ready, stats.reserved, stats.delayed, stats.oldest_age_secs) == (2, 1, 2, 20.0)
    assert ops.stats([other])[0].ready == 1


def test_clear_deletes_the_waiting_and_delayed_jobs_not_those_in_hand(dut: DriverUnderTest) -> None:
    q, other = dut.queues("q", "other")
    ops = ops_for(dut)
    dut.driver.push_many(q, ["a", "b", "c"])
    dut.driver.later(q, ["d"], 60)
    dut.driver.push(other, "x")
    held = dut.driver.pop([q], EMPTY)
    assert held is not None
    assert ops.clear(q) == 3
    [stats] = ops.stats([q])
    assert (stats.ready, stats.reserved, stats.delayed) == (0, 1, 0)
    assert dut.driver.ack(held)
    assert ops.stats([other])[0].ready == 1
    assert ops.clear(q) == 0


def test_pause_resume_and_a_timed_pause(dut: DriverUnderTest) -> None:
    q, other = dut.queues("q", "other")
    ops = ops_for(dut)
    assert ops.paused([q, other]) == {}
    assert ops.resume(q) is False
    pause = ops.pause(q, None)
    assert pause.until_ms is None
    timed = ops.pause(other, 90)
    assert timed.until_ms == timed.since_ms + 90_000
    assert set(ops.paused([q, other])) == {q, other}
    assert ops.stats([q])[0].paused == pause
    assert ops.resume(q) is True
    assert set(ops.paused([q, other])) == {other}
    assert q not in ops.beat(record("w", (q, other)), MetricDeltas(), [q, other]).paused


def test_the_restart_mark_changes_with_each_request(dut: DriverUnderTest) -> None:
    ops = ops_for(dut)
    assert ops.restart_mark() is None
    first = ops.request_restart()
    assert ops.restart_mark() == first
    dut.clock.advance(1)
    second = ops.request_restart()
    assert second != first
    assert ops.beat(record("w", ()), MetricDeltas(), []).restart_mark == second


def test_the_registry_lists_live_workers_and_forgets_stopped_ones(dut: DriverUnderTest) -> None:
    q = dut.queues("q")[0]
    ops = ops_for(dut)
    assert ops.workers() == []
    jobs = ({"queue": q, "event": "e", "listener": "L", "uuid": "u", "since": 5.0},)
    ops.beat(record("w1", (q,), done=3, jobs=jobs), MetricDeltas(), [q])
    ops.beat(record("w2", (q,)), MetricDeltas(), [q])
    listed = {w.id: w for w in ops.workers()}
    assert set(listed) == {"w1", "w2"}
    assert (listed["w1"].done, listed["w1"].jobs) == (3, jobs)
    ops.forget_worker("w2")
    assert [w.id for w in ops.workers()] == ["w1"]
    assert q in ops.queues()


def test_metric_deltas_add_up_across_workers_and_beats(dut: DriverUnderTest) -> None:
    q = dut.queues("q")[0]
    ops = ops_for(dut)
    first, second = MetricDeltas(), MetricDeltas()
    first.add(q, "app.L", "done", 0.2)
    first.add(q, "app.L", "failed", 7200.0)
    second.add(q, "app.L", "done", 0.003)
    second.add(q, "app.M", "retried", 1.5)
    ops.beat(record("w1", (q,)), first, [q])
    ops.beat(record("w2", (q,)), second, [q])
    by_listener = {m.listener: m for m in ops.metrics() if m.queue == q}
    assert by_listener["app.L"].counts == {"done": 2, "failed": 1, "retried": 0}
    buckets = by_listener["app.L"].buckets
    assert len(buckets) == len(BUCKETS_SECS) + 1
    assert (buckets[0], buckets[BUCKETS_SECS.index(0.25)], buckets[-1], sum(buckets)) == (1, 1, 1, 3)
    assert by_listener["app.L"].seconds == pytest.approx(7200.203)
    assert by_listener["app.M"].counts["retried"] == 1
    [minute] = ops.minutes([q])
    assert (minute.done, minute.failed, minute.retried) == (2, 1, 1)
    assert minute.seconds == pytest.approx(7201.703)
    dut.clock.advance(120)
    assert ops.minutes([q], last=1) == []


def test_a_presence_flushes_its_counts_and_obeys_pause_and_restart(dut: DriverUnderTest) -> None:
    q, low = dut.queues("q", "low")
    ops = ops_for(dut)
    ops.request_restart()  # an earlier deploy's mark: a worker started after it must not restart
    presence = Presence(None, "c", [q, low], backend=ops, host="box", pid=42)
    presence.started()
    assert (presence.paused_queues(), presence.restart_requested()) == (frozenset(), False)
    presence.record(q, "app.L", "done", 0.01)
    presence.record(q, "app.L", "failed", 0.02)
    with pytest.raises(ValueError, match="outcome 'lost'"):
        presence.record(q, "app.L", "lost", 0.0)
    ops.pause(low, None)
    assert presence.paused_queues() == frozenset()  # nothing changes until the next beat
    presence.beat([InHand(q, "e", "app.L", "u1", 3.0)])
    assert presence.paused_queues() == frozenset({low})
    [worker] = ops.workers()
    assert (worker.host, worker.pid, worker.done, worker.failed, worker.queues) == ("box", 42, 1, 1, (q, low))
    assert worker.jobs[0]["uuid"] == "u1"
    assert {m.listener: m.counts["done"] for m in ops.metrics() if m.queue == q} == {"app.L": 1}
    dut.clock.advance(1)
    ops.request_restart()
    assert presence.restart_requested() is False
    presence.beat()
    assert presence.restart_requested() is True
    presence.stopped()
    assert ops.workers() == []


def test_a_worker_that_stops_beating_drops_out_when_its_record_expires(dut: DriverUnderTest) -> None:
    ops = ops_for(dut)
    ops.beat(record("w", ()), MetricDeltas(), [], 5.0)
    dut.clock.advance(4.9)
    assert [w.id for w in ops.workers()] == ["w"]
    if isinstance(ops, RedisOps):
        # Redis expires the record by its own clock (tests/integration/test_ops_cli.py waits for it
        # after a kill -9); here the expiry is done as Redis does it, and the listing forgets the id.
        assert 0 < ops.client.pttl(connection_key("worker:w", ops.namespace, ops.space)) <= 5000
        ops.client.delete(connection_key("worker:w", ops.namespace, ops.space))
        assert ops.workers() == []
        assert ops.client.zcard(connection_key("workers", ops.namespace, ops.space)) == 0
        return
    dut.clock.advance(0.2)
    assert ops.workers() == []


def test_a_presence_keeps_its_counts_through_an_outage(dut: DriverUnderTest) -> None:
    q = dut.queues("q")[0]
    ops = ops_for(dut)
    presence = Presence(None, "c", [q], backend=Unreachable(ops), host="box", pid=1)
    presence.started()
    presence.record(q, "app.L", "done", 0.5)
    assert presence.beat() == presence.beat()  # the last control state it had, no exception
    assert ops.metrics() == []
    presence.backend = ops
    presence.record(q, "app.L", "done", 0.5)
    presence.beat()
    assert [m.counts["done"] for m in ops.metrics() if m.queue == q] == [2]
    with pytest.raises(ValueError, match="give the App or Config"):
        Presence(None, "c", [q])


class Unreachable:
    """An operator backend whose server is down: every call fails as a lost connection does."""

    def __init__(self, real: OpsBackend) -> None:
        self.name = real.name

    def beat(self, *args: object) -> None:
        from oxide.errors import ConnectionUnavailable

        raise ConnectionUnavailable("connection refused")

    forget_worker = beat
