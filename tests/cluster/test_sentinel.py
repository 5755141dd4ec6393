"""The redis driver under Sentinel (a master, a replica, three sentinels; tests/cluster/servers.py).

The failover itself is in test_failover.py. Here: the URL and the config form find the master, and
a write that reaches a replica (a demoted master still holding our connection) is "unavailable,
retry" for the worker, never a failed job.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from oxide.config import ConnectionConfig, load_config
from oxide.drivers.redis import RedisDriver
from oxide.errors import ConnectionUnavailable
from oxide.failed import FailedJob
from oxide.worker import Worker, WorkerOptions
from tests.cluster.servers import LocalSentinel
from tests.integration.worker_apps import recorder_app
from tests.integration.worker_procs import tick

pytestmark = [pytest.mark.redis, pytest.mark.usefixtures("isolated_cwd")]


def test_the_url_and_the_config_form_both_reach_the_master(
    redis_sentinel: LocalSentinel, key_prefix: str, tmp_path: Path
) -> None:
    sentinels = ", ".join(f'"127.0.0.1:{s.port}"' for s in redis_sentinel.sentinels)
    config = tmp_path / "config"
    config.mkdir()
    (config / "queue.toml").write_text(
        f'default = "url"\n[connections.url]\ndriver = "redis"\nurl = "{redis_sentinel.url}"\n'
        f'[connections.form]\ndriver = "redis"\nurl = "redis://ignored/0"\nsentinels = [{sentinels}]\n'
        f'sentinel_master = "{redis_sentinel.master_name}"\n',
        encoding="utf-8",
    )
    loaded = load_config(config, environ={})
    by_url, by_form = RedisDriver(loaded.connection("url")), RedisDriver(loaded.connection("form"))
    queue = f"{key_prefix}q"
    try:
        by_url.push(queue, "one")
        by_form.push(queue, "two")
        with redis_sentinel.master().client() as master:
            assert master.lrange(f"oxide:queue:{queue}", 0, -1) == [b"two", b"one"]
        delivery = by_form.pop([queue], 0.01)
        assert delivery is not None
        assert delivery.body == b"one"
        assert by_url.ack(delivery)
    finally:
        by_url.client.delete(*[f"oxide:queue:{queue}{s}" for s in ("", ":notify", ":reserved", ":crashes")])
        by_url.close()
        by_form.close()


def test_a_replica_refusing_writes_is_unavailable_and_the_worker_fails_no_job(
    redis_sentinel: LocalSentinel, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    replica = next(s for s in redis_sentinel.servers if s is not redis_sentinel.master())
    queue = f"{key_prefix}q"
    # A plain connection to the replica: what a client of a demoted master holds until it reconnects.
    conn = ConnectionConfig(name="old-master", driver="redis", url=f"redis://127.0.0.1:{replica.port}/0")
    driver = RedisDriver(conn)
    with pytest.raises(ConnectionUnavailable, match="read only replica"):
        driver.push(queue, "lost?")
    with pytest.raises(ConnectionUnavailable, match="read only replica"):
        driver.take([queue], 0.01)
    driver.close()

    app = recorder_app()
    app.config = dataclasses.replace(app.config, connections={"old-master": conn}, default="old-master")
    failed: list[FailedJob] = []
    naps: list[float] = []
    worker = Worker(
        app, "old-master", [queue], WorkerOptions(max_time_secs=1.0), failer=failed.append, sleep=naps.append
    )
    with redis_sentinel.master().client() as master:
        master.lpush(f"oxide:queue:{queue}", tick("t1"))
    try:
        with caplog.at_level("WARNING", logger="oxide.worker"):
            worker.run()
        with redis_sentinel.master().client() as master:
            assert master.llen(f"oxide:queue:{queue}") == 1  # still there, for the worker that reaches the master
    finally:
        with redis_sentinel.master().client() as master:
            master.delete(f"oxide:queue:{queue}")
    assert failed == []
    assert "unavailable" in caplog.text
    assert "read only replica" in caplog.text
    assert naps  # it waited to reconnect: the replica refusing the write was an outage, not a job's failure
