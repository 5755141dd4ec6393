"""Fault tests: the master holding a queue is killed (SIGKILL) mid-drain, on a cluster and under Sentinel.

A producer pushes all the while; a real worker process drains. A push that raised is not
acknowledged (its job may or may not exist); a push that returned is, and must be run: once the
queue is empty, every acknowledged job must have been recorded by the worker. Duplicates are
allowed (delivery is at least once), and so is a job recorded as failed: a take whose reply was
lost in the failover leaves its job reserved, the reservation expires and counts as a crash, and
with the listener's one try the job goes to failed_jobs instead of running (docs/redis-compatibility.md). With ``wait_replicas = 1`` nothing acknowledged may be lost
across repeated failovers. Without it the loss is measured, not asserted: ``bench/failover.py``
runs the same drain with a producer pushing as fast as it can (docs/redis-compatibility.md quotes it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from oxide.config import load_config
from oxide.drivers.redis import RedisDriver
from oxide.errors import ConnectionUnavailable
from tests.cluster.servers import LocalCluster, LocalSentinel, wait_for
from tests.integration.worker_procs import recorded, start_worker, tick, worker_env

pytestmark = [pytest.mark.redis, pytest.mark.usefixtures("isolated_cwd")]

FAILOVERS = 2


@dataclass
class Producer:
    """Pushes ``tick`` jobs one by one until stopped; ``pace_secs`` between pushes."""

    driver: RedisDriver
    queue: str
    pace_secs: float
    acked: list[str] = field(default_factory=list)
    acked_at: dict[str, float] = field(default_factory=dict)  # time.monotonic() when the push returned
    refused: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            token = f"p{n}"
            n += 1
            try:
                self.driver.push(self.queue, tick(token))
            except ConnectionUnavailable:
                self.refused.append(token)
                time.sleep(0.05)
                continue
            self.acked.append(token)
            self.acked_at[token] = time.monotonic()
            if self.pace_secs:
                time.sleep(self.pace_secs)


@dataclass
class Outcome:
    acked: int
    refused: int
    lost: list[str]
    duplicates: int
    failed: int  # recorded as failed instead of run (see below)
    worker_log: str
    when_lost: str = ""  # when the lost pushes returned, against the kills and restarts


def drain_through_failovers(
    tmp_path: Path, url: str, prefix: str, fail_over: Callable[[], Any], *, wait_replicas: int, pace_secs: float
) -> Outcome:
    config = tmp_path / "config"
    config.mkdir()
    (config / "queue.toml").write_text(
        f'default = "ha"\n[connections.ha]\ndriver = "redis"\nurl = "{url}"\nprefix = "{prefix}"\n'
        f"visibility_timeout_secs = 2\nblock_timeout_secs = 1\nwait_replicas = {wait_replicas}\n"
        '\n[failed]\ndriver = "none"\n',
        encoding="utf-8",
    )
    driver = RedisDriver(load_config(config, environ={}).connection("ha"))
    record = tmp_path / "recorded.txt"
    env = worker_env("", OXIDE_TEST_RECORD_FILE=str(record), QUEUE_CONNECTION="ha")
    worker = start_worker(tmp_path, env, "tests.integration.worker_apps:recorder_app", "--queue=q")
    producer = Producer(driver, "q", pace_secs)
    thread = threading.Thread(target=producer.run, daemon=True)
    try:
        thread.start()
        events = []
        for n in range(FAILOVERS):
            wait_for(lambda: len(recorded(record)) > 50, "the worker to be draining")
            events.append((f"kill {n + 1}", time.monotonic()))
            fail_over()
            events.append((f"back {n + 1}", time.monotonic()))  # the restarted node is a replica, streaming
            time.sleep(0.5)
        producer.stop.set()
        thread.join(30)
        assert worker.proc.poll() is None, f"the worker died:\n{worker.log[-3000:]}"
        # Drained: nothing ready, nothing held (a job held by a reply lost in the failover comes back
        # when its 2 s reservation expires), and every acknowledged job recorded or known lost.
        wait_for(lambda: _empty(driver), "the queue to drain", timeout=60)
        wait_for(lambda: set(producer.acked) <= set(recorded(record)) or _empty(driver), "the last jobs", 10)
        done = recorded(record)
        assert worker.proc.poll() is None, f"the worker died:\n{worker.log[-3000:]}"
        log = worker.log
        # A take whose reply the failover swallowed leaves its job reserved; the reservation expires and
        # counts as a crash, and with tries = 1 the job is then recorded as failed (failed_jobs), not run.
        failed = {o["uuid"] for o in worker.outcomes() if o["outcome"] == "failed"}
    finally:
        producer.stop.set()
        worker.kill()
        driver.client.delete(
            *[driver.space.base("q") + s for s in ("", ":reserved", ":delayed", ":notify", ":crashes")]
        )
        driver.close()
    seen = set(done)
    lost = [t for t in producer.acked if t not in seen and t not in failed]
    spans = [producer.acked_at[t] for t in lost]
    when = ", ".join(f"{name} at {at - events[0][1]:+.2f} s" for name, at in events)
    if spans:
        when += (
            f"; lost pushes returned between {min(spans) - events[0][1]:+.2f} s and {max(spans) - events[0][1]:+.2f} s"
        )
    return Outcome(
        acked=len(producer.acked),
        refused=len(producer.refused),
        lost=lost,
        duplicates=len(done) - len(seen),
        failed=len(failed),
        worker_log=log,
        when_lost=when,
    )


def _empty(driver: RedisDriver) -> bool:
    try:
        return driver.size("q") == 0 and driver.client.zcard(driver.space.base("q") + ":reserved") == 0
    except Exception:
        return False


def report(kind: str, wait_replicas: int, outcome: Outcome, record_property: Callable[[str, object], None]) -> str:
    line = (
        f"{kind}, wait_replicas={wait_replicas}, {FAILOVERS} failovers: {outcome.acked} pushes acknowledged, "
        f"{len(outcome.lost)} lost, {outcome.refused} refused during the failovers, {outcome.duplicates} run twice, {outcome.failed} failed after an expired reservation"
        f" ({outcome.when_lost})"
    )
    record_property("failover", line)
    print(line)
    return line


def test_a_cluster_master_killed_mid_drain_loses_nothing_acknowledged_with_wait_replicas(
    redis_cluster: LocalCluster, cluster_prefix: str, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    outcome = drain_through_failovers(
        tmp_path,
        redis_cluster.url,
        cluster_prefix,
        lambda: redis_cluster.fail_over(cluster_prefix),
        wait_replicas=1,
        pace_secs=0.002,
    )
    line = report("cluster", 1, outcome, record_property)
    assert outcome.acked > 100, line
    assert outcome.refused > 0, line  # the failovers did hit the producer
    assert "unavailable" in outcome.worker_log  # and the worker, which carried on
    assert outcome.lost == [], line


def test_a_sentinel_master_killed_mid_drain_loses_nothing_acknowledged_with_wait_replicas(
    redis_sentinel: LocalSentinel, key_prefix: str, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    outcome = drain_through_failovers(
        tmp_path,
        redis_sentinel.url,
        f"oxide:queue:{key_prefix}",
        redis_sentinel.fail_over,
        wait_replicas=1,
        pace_secs=0.002,
    )
    line = report("sentinel", 1, outcome, record_property)
    assert outcome.acked > 100, line
    assert outcome.refused > 0, line
    assert "unavailable" in outcome.worker_log
    assert outcome.lost == [], line
