"""The operator commands end to end, in-process, on Redis and on the database driver over each database.

Each test gets an application directory of its own (config, migrated tables); Redis
queues carry the test's key prefix, and the connection-wide keys (restart mark,
worker registry) the test's namespace, so nothing reaches another test.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from oxide.cli import main
from oxide.ops import MetricDeltas, WorkerRecord
from tests.integration.ops_apps import CliApp, cli_app, push, write_config

__all__ = ["cli_app"]  # the fixture, imported for the tests below


def test_monitor_alerts_at_max_and_says_so_in_its_exit_status(cli_app: CliApp) -> None:
    busy, idle = cli_app.queue("busy"), cli_app.queue("idle")
    push(cli_app, busy, 3)
    status, out, _ = cli_app.run("queue:monitor", f"{busy},q:{idle}", "--max", "3")
    assert status == 1
    lines = out.splitlines()
    assert lines[0].split() == [
        "CONNECTION",
        "QUEUE",
        "READY",
        "RESERVED",
        "DELAYED",
        "FAILED",
        "OLDEST",
        "PAUSED",
        "STATUS",
    ]
    assert lines[1].split()[:6] == ["q", busy, "3", "0", "0", "0"]
    assert lines[1].endswith("ALERT (>= 3)")
    assert lines[2].split() == ["q", idle, "0", "0", "0", "0", "-", "-", "OK"]
    status, out, _ = cli_app.run("queue:monitor", busy, "--max", "4", "--json")
    assert status == 0
    [row] = json.loads(out)
    assert (row["queue"], row["ready"], row["size"], row["status"], row["paused"]) == (busy, 3, 3, "OK", False)
    assert row["oldest_age_secs"] >= 0


def test_clear_says_how_many_went_and_asks_at_a_terminal(cli_app: CliApp, monkeypatch: pytest.MonkeyPatch) -> None:
    queue = cli_app.queue("bulk")
    push(cli_app, queue, 4)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal("n\n"))
    status, out, _ = cli_app.run("queue:clear", "--queue", queue)
    assert (status, out) == (0, f"Delete the 4 job(s) waiting in q/{queue}? [y/N] Nothing deleted.\n")
    monkeypatch.setattr(sys, "stdin", Terminal("y\n"))
    assert cli_app.run("queue:clear", "q", "--queue", queue)[1].endswith(f"Cleared 4 job(s) from q/{queue}.\n")
    push(cli_app, queue, 2)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # no terminal: nobody to ask
    assert cli_app.run("queue:clear", "--queue", queue) == (0, f"Cleared 2 job(s) from q/{queue}.\n", "")
    assert cli_app.run("queue:clear", "--queue", queue, "--force")[1] == f"Cleared 0 job(s) from q/{queue}.\n"


def test_pause_and_resume_a_queue(cli_app: CliApp) -> None:
    queue = cli_app.queue("emails")
    status, out, _ = cli_app.run("queue:pause", f"q:{queue}", "--for", "15m")
    assert status == 0
    assert out.startswith(f"Paused q/{queue} until ")
    assert out.endswith(" UTC.\n")
    [row] = json.loads(cli_app.run("queue:monitor", queue, "--json")[1])
    assert row["paused"] is True
    assert row["paused_until_ms"] is not None
    assert cli_app.run("queue:resume", queue) == (0, f"Resumed q/{queue}.\n", "")
    assert cli_app.run("queue:resume", queue) == (0, f"q/{queue} was not paused.\n", "")
    assert cli_app.run("queue:pause", queue)[1] == f"Paused q/{queue} until queue:resume.\n"
    assert cli_app.ops().paused([queue])[queue].until_ms is None
    status, _, err = cli_app.run("queue:pause", queue, "--for", "soon")
    assert status == 2
    assert err == "oxide: error: queue:pause --for: expected a duration such as 90, 90s, 15m, 2h or 1d, got 'soon'\n"


def test_restart_stores_a_new_mark_and_workers_lists_the_live_ones(cli_app: CliApp) -> None:
    ops = cli_app.ops()
    assert ops.restart_mark() is None
    assert cli_app.run("queue:restart", "--connection", "q") == (
        0,
        "Restart signal stored on q: its workers finish their jobs and exit.\n",
        "",
    )
    assert ops.restart_mark() is not None
    assert cli_app.run("queue:workers") == (0, "No live workers on q.\n", "")
    queue = cli_app.queue("default")
    job = {"queue": queue, "event": "e.v", "listener": "l.L", "uuid": "u", "since": time.time() - 5}
    ops.beat(
        WorkerRecord("w1", "box", 4242, "q", (queue,), time.time() - 60, done=7, jobs=(job,)), MetricDeltas(), [queue]
    )
    status, out, _ = cli_app.run("queue:workers", "q")
    assert status == 0
    header, row = out.splitlines()
    assert header.split() == ["HOST", "PID", "QUEUES", "UP", "DONE", "FAILED", "RUNNING"]
    assert row.split()[:6] == ["box", "4242", queue, "60s", "7", "0"]
    assert row.split()[6] == "l.L"
    [listed] = json.loads(cli_app.run("queue:workers", "--json")[1])
    assert (listed["id"], listed["pid"], listed["jobs"][0]["uuid"]) == ("w1", 4242, "u")
    ops.close()


def test_the_sync_connection_keeps_nothing_to_monitor(cli_app: CliApp) -> None:
    status, out, err = cli_app.run("queue:monitor", "inline:default")
    assert (status, out) == (2, "")
    assert err.startswith("oxide: error: queue connection 'inline' uses the sync driver, which runs jobs inline")
    assert cli_app.run("queue:pause", "inline:x")[0] == 2


def test_monitor_exits_2_when_the_backend_is_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    write_config(
        tmp_path, 'driver = "redis"\nurl = "redis://:hunter2@127.0.0.1:1/0"\n', f"sqlite:///{tmp_path / 'db.sqlite'}"
    )
    status = main(["--config", str(tmp_path / "config"), "queue:monitor", "default"])
    out, err = capsys.readouterr()
    assert (status, out) == (2, "")
    warning, error = err.splitlines()
    assert warning.startswith("oxide: warning: failed counts not read: database 'main'")
    assert error.startswith("oxide: error: redis connection 'q' (redis://:***@127.0.0.1:1/0): ")
    assert "hunter2" not in err
    assert main(["--config", str(tmp_path / "config"), "queue:restart", "--connection", "q"]) == 1


KILLED_CHILD = """
import sys, time
from oxide.config import ConnectionConfig
from oxide.ops.presence import Presence
from oxide.ops.redis_ops import RedisOps
ops = RedisOps(ConnectionConfig(name="q", driver="redis", url=sys.argv[1]), namespace=sys.argv[2])
presence = Presence(None, "q", [sys.argv[2] + "default"], backend=ops, ttl_secs=1.0)
presence.started()
print(presence.id, flush=True)
while True:
    presence.beat()
    time.sleep(0.2)
"""


@pytest.mark.redis
def test_the_registry_forgets_a_worker_killed_with_sigkill(
    redis_server_url: str, real_redis: Any, key_prefix: str
) -> None:
    from oxide.config import ConnectionConfig
    from oxide.ops.redis_ops import RedisOps, connection_key

    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_CHILD, redis_server_url, key_prefix], stdout=subprocess.PIPE, text=True
    )
    ops = RedisOps(ConnectionConfig(name="q", driver="redis", url=redis_server_url), namespace=key_prefix)
    try:
        assert child.stdout is not None
        worker_id = child.stdout.readline().strip()
        assert [w.id for w in ops.workers()] == [worker_id]
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        deadline = time.monotonic() + 30  # a bound on the wait, not a measurement: the record expires after 1 s
        while ops.workers() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ops.workers() == []
        assert real_redis.zcard(connection_key("workers", key_prefix)) == 0  # the id went with the record
    finally:
        if child.poll() is None:
            child.kill()
        ops.close()
