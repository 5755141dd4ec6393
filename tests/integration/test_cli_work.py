"""The real ``oxide queue:work`` command, run as a subprocess against the real Redis with the example shop app."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from oxide.wire import Job
from tests.conftest import service_missing
from tests.integration.worker_procs import SHOP, run_oxide, worker_env

SHOP_APP = "shop.app:app"


def order(listener: str, order_id: int, *, job_uuid: str | None = None) -> str:
    payload = {"email": f"c{order_id}@example.com", "order_id": order_id, "total_cents": 100 * order_id}
    return Job("shop.order_placed", f"shop.listeners.{listener}", payload, uuid=job_uuid).to_json()


@pytest.fixture
def shop_env(redis_server_url: str) -> dict[str, str]:
    return worker_env(redis_server_url, OXIDE_CONFIG_DIR=str(SHOP / "config"))


def work(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_oxide(tmp_path, env, "--app", SHOP_APP, "queue:work", *args)


def outcomes(stderr: str) -> list[dict[str, Any]]:
    from tests.integration.worker_procs import OUTCOME

    return [m.groupdict() for m in OUTCOME.finditer(stderr)]


@pytest.mark.redis
def test_jobs_pushed_with_redis_cli_are_run(
    tmp_path: Path, shop_env: dict[str, str], real_redis: Any, key_prefix: str, redis_server_url: str
) -> None:
    redis_cli = shutil.which("redis-cli")
    if redis_cli is None:
        service_missing("redis-cli", "install the redis-tools package")
    queue = f"{key_prefix}default"
    bodies = [
        order("ChargeCard", 7, job_uuid="u-charge"),
        order("SendReceipt", 7, job_uuid="u-receipt"),  # async def handle
        order("SyncLegacyCrm", 7, job_uuid="u-crm"),  # raises
        order("UpdateSalesReport", 7),  # no uuid, as a minimal producer might send
    ]
    subprocess.run(
        [str(redis_cli), "-u", redis_server_url, "LPUSH", f"oxide:queue:{queue}", *bodies],
        check=True,
        capture_output=True,
    )
    result = work(tmp_path, shop_env, "--queue", queue, "--stop-when-empty")
    assert result.returncode == 0, result.stderr
    seen = [(o["listener"], o["uuid"], o["outcome"]) for o in outcomes(result.stderr)]
    assert seen == [
        ("shop.listeners.ChargeCard", "u-charge", "done"),
        ("shop.listeners.SendReceipt", "u-receipt", "done"),
        ("shop.listeners.SyncLegacyCrm", "u-crm", "failed"),
        ("shop.listeners.UpdateSalesReport", None, "done"),
    ]
    assert "charged order 7: 700 cents" in result.stderr
    assert "receipt for order 7 sent to c7@example.com" in result.stderr
    assert "ConnectionRefusedError: legacy CRM refused order 7" in result.stderr
    assert "reason=queue_empty" in result.stderr
    assert real_redis.llen(f"oxide:queue:{queue}") == 0


@pytest.mark.redis
def test_priority_across_high_default_low(
    tmp_path: Path, shop_env: dict[str, str], real_redis: Any, key_prefix: str
) -> None:
    names = [f"{key_prefix}{q}" for q in ("high", "default", "low")]
    pushed: dict[str, list[str]] = {q: [] for q in names}
    for n in range(4):
        for queue in reversed(names):  # the low queue fills first: order of arrival must not matter
            job_uuid = str(uuid.uuid4())
            pushed[queue].append(job_uuid)
            real_redis.lpush(f"oxide:queue:{queue}", order("ChargeCard", n, job_uuid=job_uuid))
    result = work(tmp_path, shop_env, f"--queue={','.join(names)}", "--stop-when-empty")
    assert result.returncode == 0, result.stderr
    taken = [(o["queue"], o["uuid"]) for o in outcomes(result.stderr)]
    assert taken == [(q, u) for q in names for u in pushed[q]]


@pytest.mark.redis
def test_max_jobs_stops_after_that_many(
    tmp_path: Path, shop_env: dict[str, str], real_redis: Any, key_prefix: str
) -> None:
    queue = f"{key_prefix}default"
    real_redis.lpush(f"oxide:queue:{queue}", *(order("ChargeCard", n) for n in range(5)))
    result = work(tmp_path, shop_env, "--queue", queue, "--max-jobs", "2")
    assert result.returncode == 0, result.stderr
    assert len(outcomes(result.stderr)) == 2
    assert "reason=max_jobs" in result.stderr
    assert real_redis.llen(f"oxide:queue:{queue}") == 3


@pytest.mark.redis
def test_once_runs_one_job(tmp_path: Path, shop_env: dict[str, str], real_redis: Any, key_prefix: str) -> None:
    queue = f"{key_prefix}default"
    real_redis.lpush(f"oxide:queue:{queue}", *(order("ChargeCard", n) for n in range(3)))
    result = work(tmp_path, shop_env, "--queue", queue, "--once")
    assert result.returncode == 0, result.stderr
    assert len(outcomes(result.stderr)) == 1
    assert "reason=once" in result.stderr
    assert real_redis.llen(f"oxide:queue:{queue}") == 2


@pytest.mark.redis
def test_max_time_stops_an_idle_worker(tmp_path: Path, shop_env: dict[str, str], key_prefix: str) -> None:
    result = work(tmp_path, shop_env, "--queue", f"{key_prefix}default", "--max-time", "1.5")
    assert result.returncode == 0, result.stderr
    assert "reason=max_time" in result.stderr


@pytest.mark.redis
def test_max_time_lets_a_busy_worker_finish_its_job(
    tmp_path: Path, shop_env: dict[str, str], real_redis: Any, key_prefix: str
) -> None:
    queue = f"{key_prefix}default"
    real_redis.lpush(f"oxide:queue:{queue}", *(order("ChargeCard", n) for n in range(3)))
    result = work(tmp_path, shop_env, "--queue", queue, "--max-time", "1")
    assert result.returncode == 0, result.stderr
    assert [o["outcome"] for o in outcomes(result.stderr)] == ["done"] * 3
    assert "reason=max_time" in result.stderr


@pytest.mark.redis
def test_stop_when_empty_on_empty_queues(tmp_path: Path, shop_env: dict[str, str], key_prefix: str) -> None:
    result = work(tmp_path, shop_env, f"--queue={key_prefix}high,{key_prefix}low", "--stop-when-empty")
    assert result.returncode == 0, result.stderr
    assert outcomes(result.stderr) == []
    assert "reason=queue_empty" in result.stderr


@pytest.mark.redis
@pytest.mark.parametrize("extra", [[], ["--stop-when-empty"], ["--once"]])
def test_sync_connection_says_there_is_nothing_to_take(tmp_path: Path, extra: list[str]) -> None:
    env = worker_env("redis://127.0.0.1:1", OXIDE_CONFIG_DIR=str(SHOP / "config"))
    result = work(tmp_path, env, "--connection", "sync", *extra)
    assert result.returncode == 0
    assert "connection 'sync' uses the sync driver" in result.stderr
    assert "nothing for a worker to take" in result.stderr


# -- usage errors: no server needed -----------------------------------------------------------------

USAGE_ERRORS = [
    (["--queue", "high,high"], "--queue: 'high' is listed twice"),
    (["--queue", "high,,low"], "--queue: empty queue name"),
    (["--queue", "a:b"], "--queue: invalid queue name 'a:b'"),
    (["--max-jobs", "-1"], "--max-jobs: expected a whole number >= 0, got '-1'"),
    (["--max-jobs", "lots"], "--max-jobs: expected a whole number >= 0, got 'lots'"),
    (["--max-time", "nan"], "--max-time: expected a finite number of seconds >= 0, got 'nan'"),
    (["--max-time", "soon"], "--max-time: expected a number of seconds >= 0, got 'soon'"),
    (["--connection", "nope"], "unknown queue connection 'nope'"),
]


@pytest.mark.parametrize(("args", "message"), USAGE_ERRORS, ids=[" ".join(a) for a, _ in USAGE_ERRORS])
def test_usage_errors_exit_2_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    env = worker_env("redis://127.0.0.1:1", OXIDE_CONFIG_DIR=str(SHOP / "config"))
    result = work(tmp_path, env, *args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("oxide: error: ")
    assert message in result.stderr


def test_without_an_app_the_worker_refuses_to_start(tmp_path: Path) -> None:
    result = run_oxide(tmp_path, worker_env("redis://127.0.0.1:1"), "queue:work")
    assert result.returncode == 2
    assert result.stderr == (
        "oxide: error: queue:work runs your application's listeners: pass --app MODULE:ATTR or set OXIDE_APP\n"
    )


def test_verbose_adds_the_traceback(tmp_path: Path) -> None:
    env = worker_env("redis://127.0.0.1:1", OXIDE_CONFIG_DIR=str(SHOP / "config"))
    result = run_oxide(tmp_path, env, "-v", "--app", SHOP_APP, "queue:work", "--queue", "a,a")
    assert result.returncode == 2
    assert "Traceback (most recent call last)" in result.stderr


def test_help_explains_every_option(tmp_path: Path) -> None:
    result = run_oxide(tmp_path, worker_env("redis://127.0.0.1:1"), "queue:work", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for option, words in [
        ("--connection NAME", "the connection in config/queue.toml"),
        ("--queue Q1,Q2,...", "queue names, highest priority first"),
        ("--once", "run one job, then exit"),
        ("--stop-when-empty", "exit as soon as every listed queue is empty"),
        ("--max-jobs N", "take at most N jobs, failed ones included, and exit once they have finished"),
        ("--max-time SECONDS", "stop taking jobs after this many seconds, and exit once those in flight have finished"),
        ("--concurrency N", "run up to N jobs at once"),
        ("--stop-timeout SECONDS", "once told to stop, wait at most this long for the jobs in flight"),
        ("--processes P", "run P worker processes"),
    ]:
        assert f"{option} {words}" in text, option
    assert "nothing for a worker to take" in text  # the sync connection's behaviour is documented
    top = run_oxide(tmp_path, worker_env("redis://127.0.0.1:1"), "--help")
    assert "queue:work" in top.stdout
