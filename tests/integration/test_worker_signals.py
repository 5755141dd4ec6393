"""Signals against a real worker process and the real Redis: none loses a job, none runs one twice.

The storm runs with reservations (the default: a taken job waits in ``:reserved`` until it is
acknowledged) and without (``visibility_timeout_secs = 0``: a plain BRPOP), each with one slot and
with eight (``--concurrency 8``: up to eight jobs in flight when the signal lands, all finished).
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from oxide import App, Mode
from oxide.config import load_config
from oxide.drivers.reservations import keys_of
from oxide.worker import StopReason, Worker, WorkerOptions
from tests.conftest import redis_driver_for
from tests.integration.worker_apps import RecordTick, Tick
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

TRIALS = 50
BUDGET_SECS = 30.0  # each storm stops starting trials after this
MIN_TRIALS = 10  # ...but it must have run at least this many to count


def token_of(body: bytes) -> str:
    return Tick.from_payload(json.loads(body)["payload"]).token


def one_trial(
    rng: random.Random,
    trial: int,
    *,
    tmp_path: Path,
    env: dict[str, str],
    client: Any,
    queue: str,
    reserving: bool,
    slots: int,
) -> dict[str, Any]:
    record = tmp_path / f"record-{trial}.txt"
    worker = start_worker(
        tmp_path,
        {**env, "OXIDE_TEST_RECORD_FILE": str(record)},
        RECORDER_APP,
        "--queue",
        queue,
        "--concurrency",
        str(slots),
        log_name=f"worker-{trial}.log",
    )
    key = f"oxide:queue:{queue}"
    producer = redis_driver_for(client, visibility_timeout_secs=90.0 if reserving else 0.0)
    pushed: list[str] = []
    try:
        # The handlers are in place before "worker started" is logged; a signal before that would
        # only find Python's defaults, with no job in hand.
        wait_until(lambda: "worker started" in worker.log, "the worker to start")
        signum = rng.choice([signal.SIGTERM, signal.SIGTERM, signal.SIGINT])
        signal_at = time.monotonic() + rng.uniform(0.0, 0.3)
        sent_at: float | None = None
        # Keep jobs flowing until the worker has exited, so jobs arrive while it is stopping too.
        while worker.proc.poll() is None:
            burst = [f"{trial}-{len(pushed) + i}" for i in range(rng.randint(1, 3))]
            bodies = [tick(t, sleep_ms=rng.choice([0, 0, 0.5, 2])) for t in burst]
            # A plain LPUSH, as redis-cli or a Rust producer sends it, or our push (which wakes idle workers).
            if rng.random() < 0.5:
                client.lpush(key, *bodies)
            else:
                producer.push_many(queue, bodies)
            pushed += burst
            now = time.monotonic()
            if sent_at is None and now >= signal_at:
                worker.proc.send_signal(signum)
                sent_at = now
            if sent_at is not None and now - sent_at > 15:
                raise AssertionError(f"worker still running 15 s after {signum.name}:\n{worker.log[-2000:]}")
            time.sleep(rng.uniform(0, 0.004))
        status = worker.wait()
    finally:
        worker.kill()
    assert status == 0, worker.log[-3000:]
    assert f"reason=interrupted ({signum.name})" in worker.log
    done = recorded(record)
    left = [token_of(b) for b in client.lrange(key, 0, -1)]
    # After a clean stop nothing may stay reserved (it would run again) or delayed.
    _ready, reserved, delayed, notify, crashes = keys_of(queue)
    held = {"reserved": client.zcard(reserved), "delayed": client.zcard(delayed), "crashes": client.hlen(crashes)}
    client.delete(key, reserved, delayed, notify, crashes)
    return {"pushed": pushed, "done": done, "left": left, "held": held, "signal": signum.name}


MODES = {"reservations-1-slot": (True, 1), "brpop-1-slot": (False, 1)}
MODES |= {"reservations-8-slots": (True, 8), "brpop-8-slots": (False, 8)}


@pytest.mark.parametrize("mode", list(MODES.values()), ids=list(MODES))
def test_no_signal_loses_or_duplicates_a_job(
    tmp_path: Path, redis_server_url: str, real_redis: Any, key_prefix: str, mode: tuple[bool, int]
) -> None:
    reserving, slots = mode
    write_config(tmp_path, visibility_timeout_secs=None if reserving else 0)
    env = worker_env(redis_server_url)
    # OXIDE_SIGNAL_SEED repeats a run's random choices; the timing of each trial still varies.
    seed = int(os.environ.get("OXIDE_SIGNAL_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    started = time.monotonic()
    totals = Counter[str]()
    for trial in range(TRIALS):
        if time.monotonic() - started > BUDGET_SECS:
            break
        outcome = one_trial(
            rng,
            trial,
            tmp_path=tmp_path,
            env=env,
            client=real_redis,
            queue=f"{key_prefix}sig{trial}",
            reserving=reserving,
            slots=slots,
        )
        counts = Counter(outcome["done"])
        duplicated = sorted(t for t, n in counts.items() if n > 1)
        both = sorted(set(outcome["done"]) & set(outcome["left"]))
        lost = sorted(set(outcome["pushed"]) - set(outcome["done"]) - set(outcome["left"]))
        assert duplicated == [], f"seed {seed} trial {trial}: run twice: {duplicated}"
        assert both == [], f"seed {seed} trial {trial}: run and still queued: {both}"
        assert lost == [], f"seed {seed} trial {trial} ({outcome['signal']}): lost {lost}"
        assert outcome["held"] == {"reserved": 0, "delayed": 0, "crashes": 0}, f"seed {seed} trial {trial}"
        assert sorted(outcome["done"] + outcome["left"]) == sorted(outcome["pushed"])
        totals.update(trials=1, pushed=len(outcome["pushed"]), done=len(outcome["done"]), left=len(outcome["left"]))
        totals.update({outcome["signal"]: 1})
    assert totals["trials"] >= MIN_TRIALS, f"only {totals['trials']} trials ran in {BUDGET_SECS} s"
    assert totals["done"] > 0
    mode = "reservations" if reserving else "brpop"
    print(f"\nsignal trials, {mode}, {slots} slot(s) (seed {seed}): {dict(totals)} lost=0 duplicated=0")


def test_sigint_while_idle_exits_zero_within_about_a_second(
    tmp_path: Path, redis_server_url: str, real_redis: Any, key_prefix: str
) -> None:
    write_config(tmp_path, block_timeout_secs=5.0)  # each take still waits at most 1 s
    env = worker_env(redis_server_url, OXIDE_TEST_RECORD_FILE=str(tmp_path / "record.txt"))
    worker = start_worker(tmp_path, env, RECORDER_APP, "--queue", f"{key_prefix}idle")
    try:
        wait_until(lambda: "worker started" in worker.log, "the worker to start")
        time.sleep(0.3)  # well inside a blocking take
        sent = time.monotonic()
        worker.proc.send_signal(signal.SIGINT)
        status = worker.wait(timeout=30)
        elapsed = time.monotonic() - sent
    finally:
        worker.kill()
    assert status == 0, worker.log
    assert "reason=interrupted (SIGINT)" in worker.log
    assert "Traceback" not in worker.log
    assert elapsed < 3.0, f"idle worker took {elapsed:.2f} s to stop"


def test_signal_during_a_real_blocking_take_in_process(
    tmp_path: Path, redis_server_url: str, real_redis: Any, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SIGINT lands while this very process is blocked reading a BRPOP reply from the real server;
    # the job pushed right after must still be taken, run and recorded.
    record = tmp_path / "record.txt"
    monkeypatch.setenv("OXIDE_TEST_RECORD_FILE", str(record))
    write_config(tmp_path, block_timeout_secs=5.0)
    app = App(config=load_config(tmp_path / "config", environ={"REDIS_URL": redis_server_url}))
    app.listen(Tick, RecordTick, Mode.queue())
    queue = f"{key_prefix}inproc"

    def signal_then_push() -> None:
        time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        real_redis.lpush(f"oxide:queue:{queue}", tick("only"))

    helper = threading.Thread(target=signal_then_push)
    try:
        worker = Worker(app, "redis", [queue], WorkerOptions(max_time_secs=30))
        helper.start()
        reason = worker.run()
    finally:
        helper.join()
        app.close()
    assert reason is StopReason.INTERRUPTED
    left = [token_of(b) for b in real_redis.lrange(f"oxide:queue:{queue}", 0, -1)]
    assert recorded(record) + left == ["only"]
