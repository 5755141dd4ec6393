"""Redis outages against a real worker process: it waits, reconnects and carries on without a restart.

Each test runs its own ``redis-server`` on a port of its own (no persistence, a temporary directory) so
that it can stop and start it; the server is always killed, by its pid, when the test ends.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.worker_procs import (
    RECORDER_APP,
    PrivateRedis,
    WorkerProcess,
    private_redis_server,
    recorded,
    start_worker,
    tick,
    wait_until,
    worker_env,
    write_config,
)

pytestmark = pytest.mark.redis


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    with private_redis_server(tmp_path / "redis") as server:
        yield server


def push(server: PrivateRedis, queue: str, *tokens: str) -> None:
    import redis

    client = redis.Redis.from_url(server.url)
    try:
        client.lpush(f"oxide:queue:{queue}", *(tick(t) for t in tokens))
    finally:
        client.close()


def start(tmp_path: Path, server: PrivateRedis, queue: str) -> tuple[WorkerProcess, Path]:
    write_config(tmp_path, block_timeout_secs=5.0)
    record = tmp_path / "record.txt"
    env = worker_env(server.url, OXIDE_TEST_RECORD_FILE=str(record))
    return start_worker(tmp_path, env, RECORDER_APP, "--queue", queue), record


def stop_worker(worker: WorkerProcess) -> None:
    try:
        worker.proc.send_signal(signal.SIGTERM)
        assert worker.wait() == 0, worker.log[-3000:]
    finally:
        worker.kill()


def test_worker_resumes_after_redis_restarts(tmp_path: Path, private_redis: PrivateRedis) -> None:
    private_redis.start()
    worker, record = start(tmp_path, private_redis, "outage")
    try:
        push(private_redis, "outage", "a1", "a2", "a3")
        wait_until(lambda: len(recorded(record)) == 3, "the first jobs to run")

        private_redis.stop()
        # Three attempts against the stopped server: the worker keeps trying rather than dying.
        wait_until(lambda: "(attempt 3)" in worker.log, "the worker to retry the stopped server")
        assert worker.proc.poll() is None, worker.log[-3000:]

        private_redis.start()
        push(private_redis, "outage", "b1", "b2", "b3")
        wait_until(lambda: len(recorded(record)) == 6, "the jobs pushed after the restart to run")
        assert worker.proc.poll() is None  # the same process, never restarted
    finally:
        stop_worker(worker)
    assert recorded(record) == ["a1", "a2", "a3", "b1", "b2", "b3"]
    assert "unavailable: redis connection" in worker.log
    assert "is back after" in worker.log
    assert "Traceback" not in worker.log


def test_worker_started_while_redis_is_down_waits_then_works(tmp_path: Path, private_redis: PrivateRedis) -> None:
    worker, record = start(tmp_path, private_redis, "late")
    try:
        wait_until(lambda: worker.log.count("retrying in") >= 2, "the worker to retry the absent server")
        assert worker.proc.poll() is None, worker.log[-3000:]

        private_redis.start()
        push(private_redis, "late", "c1", "c2")
        wait_until(lambda: len(recorded(record)) == 2, "the jobs to run once the server is up")
    finally:
        stop_worker(worker)
    assert recorded(record) == ["c1", "c2"]
    assert "is back after" in worker.log
