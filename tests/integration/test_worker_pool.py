"""``queue:work --processes``: real worker processes on the real Redis, killed and stopped.

1. A member killed with SIGKILL mid-job is restarted by the pool, and the jobs it held run
   again (their reservations expire and come back with the lost run counted).
2. SIGTERM to the pool stops every member cleanly: jobs in flight finish, nothing stays reserved,
   nothing is lost or run twice, and the pool exits 0.
3. A member that cannot start (a configuration error, exit status 2) is not restarted: the pool
   stops and exits 2. The backoff and the giving up on a member that keeps dying are in the unit
   tests of ``Pool`` (tests/unit/test_worker_pool.py), on a fake clock.
"""

from __future__ import annotations

import os
import re
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_faults import leftovers
from tests.integration.worker_procs import (
    RECORDER_APP,
    recorded,
    start_worker,
    tick,
    wait_until,
    worker_env,
    write_config,
)

pytestmark = pytest.mark.redis

STARTED = re.compile(r"worker (\d+) started \(pid (\d+)\)")


def member_pids(log: str) -> dict[int, int]:
    """The latest pid of each member, from the pool's log."""
    return {int(m[1]): int(m[2]) for m in STARTED.finditer(log)}


def test_a_killed_member_is_restarted_and_a_sigterm_stops_them_all_with_nothing_lost(
    tmp_path: Path, redis_server_url: str, real_redis: Any, key_prefix: str
) -> None:
    write_config(tmp_path, visibility_timeout_secs=2.0)
    record = tmp_path / "record.txt"
    env = worker_env(redis_server_url, OXIDE_TEST_RECORD_FILE=str(record))
    queue = f"{key_prefix}pool"
    first = [f"a{n}" for n in range(60)]
    # Long enough that the member killed below certainly holds jobs when it dies.
    real_redis.lpush(f"oxide:queue:{queue}", *[tick(t, sleep_ms=150) for t in first])
    pool = start_worker(
        tmp_path, env, RECORDER_APP, "--queue", queue, "--processes", "2", "--concurrency", "3", "--tries", "3"
    )
    try:
        wait_until(lambda: len(member_pids(pool.log)) == 2, "both members to start")
        wait_until(lambda: pool.log.count("worker started:") == 2, "both members to take jobs")
        wait_until(lambda: len(recorded(record)) >= 3, "the first jobs to be done")
        victim = member_pids(pool.log)[1]
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: "worker 1 died (killed by SIGKILL)" in pool.log, "the pool to see the death")
        wait_until(lambda: member_pids(pool.log)[1] != victim, "the pool to restart member 1", timeout=30)
        wait_until(lambda: set(recorded(record)) >= set(first), "every job, the killed member's too", timeout=60)
        # The jobs the killed member held come back (their lost run counted) and run again. A job it had
        # finished but not yet acknowledged is recorded already, so its second run may come after the
        # last token is first recorded: wait for it rather than look once.
        wait_until(
            lambda: re.search(r"outcome=done attempt=2", pool.log) is not None,
            "a job of the killed member to run again as its second attempt",
            timeout=30,
        )

        # 2. More jobs, and a SIGTERM to the pool while they are in flight.
        second = [f"b{n}" for n in range(40)]
        real_redis.lpush(f"oxide:queue:{queue}", *[tick(t, sleep_ms=100) for t in second])
        wait_until(lambda: any(t.startswith("b") for t in recorded(record)), "the second batch to start")
        pool.proc.send_signal(signal.SIGTERM)
        status = pool.wait(timeout=60)
    finally:
        pool.kill()
    assert status == 0, pool.log[-3000:]
    assert "pool: SIGTERM, passed on to 2 worker process(es)" in pool.log
    assert pool.log.count("reason=interrupted (SIGTERM)") == 2
    done = recorded(record)
    left = [b.decode() for b in real_redis.lrange(f"oxide:queue:{queue}", 0, -1)]
    left_tokens = [t for t in second if any(f'"token":"{t}"' in b for b in left)]
    counts = Counter(t for t in done if t.startswith("b"))
    assert [t for t, n in counts.items() if n > 1] == []  # a clean stop runs nothing twice
    assert sorted(set(counts) | set(left_tokens)) == sorted(second)  # and loses nothing
    assert set(counts).isdisjoint(left_tokens)
    assert "reserved" not in leftovers(real_redis, queue)
    for pid in member_pids(pool.log).values():
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


def test_a_member_that_cannot_start_stops_the_pool_with_status_2(tmp_path: Path, redis_server_url: str) -> None:
    # The members import an application module that does not exist: each exits at once with 2.
    write_config(tmp_path)
    env = worker_env(redis_server_url)
    pool = start_worker(tmp_path, env, "no_such_module:app", "--processes", "2")
    try:
        status = pool.wait(timeout=60)
    finally:
        pool.kill()
    assert status == 2, pool.log
    assert "exited with status 2, a usage or configuration error" in pool.log
    assert "cannot import 'no_such_module'" in pool.log
    assert "restarting it in" not in pool.log
