"""``queue:work --health-file``: a real worker keeps the file fresh through a Redis outage, and lets
it go stale when a listener is stuck in the worker's thread; a pool's file follows its stalest member.

Freshness is judged the way a probe would, but without a clock budget: the file is *fresh* when
its time moves on between two looks a few seconds apart, *stale* when it does not.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from oxide.wire import Job
from tests.integration.worker_procs import (
    RECORDER_APP,
    private_redis_server,
    recorded,
    start_worker,
    tick,
    wait_until,
    worker_env,
    write_config,
)

pytestmark = pytest.mark.redis

LOOK_APART_SECS = 3.0  # three times the touch interval


def moves_on(path: Path) -> bool:
    before = path.stat().st_mtime
    time.sleep(LOOK_APART_SECS)
    return path.stat().st_mtime > before


def test_the_health_file_stays_fresh_while_redis_is_down_and_the_worker_reconnects(tmp_path: Path) -> None:
    health = tmp_path / "worker.health"
    record = tmp_path / "record.txt"
    with private_redis_server(tmp_path / "redis") as server:
        server.start()
        write_config(tmp_path)
        env = worker_env(server.url, OXIDE_TEST_RECORD_FILE=str(record))
        worker = start_worker(tmp_path, env, RECORDER_APP, "--queue", "h", "--health-file", str(health))
        try:
            wait_until(health.exists, "the worker to touch its health file")
            server.kill()
            wait_until(lambda: "retrying in" in worker.log, "the worker to notice the outage")
            assert moves_on(health), "the file went stale during a Redis outage"
            server.start()
            import redis

            client = redis.Redis.from_url(server.url)
            client.lpush("oxide:queue:h", tick("after"))
            client.close()
            wait_until(lambda: recorded(record) == ["after"], "the worker to be back at work", timeout=30)
            assert moves_on(health)
        finally:
            worker.kill()


def test_the_health_file_goes_stale_while_a_listener_is_stuck(
    tmp_path: Path, redis_server_url: str, real_redis: Any, key_prefix: str
) -> None:
    health = tmp_path / "worker.health"
    record = tmp_path / "record.txt"
    write_config(tmp_path)
    env = worker_env(redis_server_url, OXIDE_TEST_RECORD_FILE=str(record))
    queue = f"{key_prefix}stuck"
    worker = start_worker(
        tmp_path, env, "tests.integration.worker_apps:stubborn_app", "--queue", queue, "--health-file", str(health)
    )
    try:
        wait_until(health.exists, "the worker to touch its health file")
        assert moves_on(health)  # idle: fresh
        real_redis.lpush(
            f"oxide:queue:{queue}",
            Job("test.stuck", "tests.integration.worker_apps.Stubborn", {"token": "s"}).to_json(),
        )
        wait_until(lambda: recorded(record) == ["start-s"], "the stuck listener to start")
        assert not moves_on(health), "the file stayed fresh while the worker's only thread was stuck"
    finally:
        worker.kill()


def test_a_pools_health_file_carries_its_stalest_members_time(
    tmp_path: Path, redis_server_url: str, real_redis: Any, key_prefix: str
) -> None:
    health = tmp_path / "pool.health"
    record = tmp_path / "record.txt"
    write_config(tmp_path)
    env = worker_env(redis_server_url, OXIDE_TEST_RECORD_FILE=str(record))
    queue = f"{key_prefix}pool"
    pool = start_worker(
        tmp_path,
        env,
        "tests.integration.worker_apps:stubborn_app",
        "--queue",
        queue,
        "--processes",
        "2",
        "--health-file",
        str(health),
    )
    try:
        members = [tmp_path / "pool.health.1", tmp_path / "pool.health.2"]
        wait_until(lambda: health.exists() and all(m.exists() for m in members), "every health file")
        assert moves_on(health)
        # One job: one member gets stuck on it, the other stays idle and fresh.
        real_redis.lpush(
            f"oxide:queue:{queue}",
            Job("test.stuck", "tests.integration.worker_apps.Stubborn", {"token": "p"}).to_json(),
        )
        wait_until(lambda: recorded(record) == ["start-p"], "a member to get stuck")
        time.sleep(1.5)  # let the stuck member's file fall behind the other's
        fresh = [m for m in members if moves_on(m)]
        assert len(fresh) == 1, "exactly one member should still be touching its file"
        assert not moves_on(health), "the pool's file followed the fresh member, not the stalest"
        assert abs(health.stat().st_mtime - min(m.stat().st_mtime for m in members)) < 1e-3
    finally:
        pool.proc.send_signal(signal.SIGKILL)
        pool.wait()
        for pid_line in [line for line in pool.log.splitlines() if "started (pid" in line]:
            pid = int(pid_line.rsplit("pid ", 1)[1].rstrip(")"))
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # the stuck member does not stop on SIGTERM
