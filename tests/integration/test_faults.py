"""Fault injection against real worker processes and real Redis servers.

What each test proves, and the fault it injects:

- kill -9: a pool of workers drains thousands of jobs while workers are SIGKILLed at random
  moments and restarted. Every job completes at least once; duplicates <= kills.
- Redis restart: the server (append-only file, an fsync per write) is killed, then shut down,
  mid-drain while a producer keeps pushing. Every push that was acknowledged completes.
- A job running past the visibility timeout in a live worker, idle workers beside it: runs once.
- A listener the job timeout cannot interrupt: the worker exits 75, the job comes back, and once
  its tries are used up it is recorded in failed_jobs, once.
- A listener's own tries/backoff/timeout against the command line's defaults.

Random choices come from a seed that is printed (``OXIDE_FAULT_SEED`` repeats it); the figures
each test measured are printed too (``pytest -s``). Waits are liveness bounds, never assertions
about how fast something happened.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from oxide.config import ConnectionConfig
from oxide.drivers.redis import RedisDriver, connect
from oxide.drivers.reservations import keys_of
from oxide.errors import ConnectionUnavailable
from oxide.wire import Job
from tests.conftest import redis_driver_for
from tests.integration.worker_procs import (
    RECORDER_APP,
    PrivateRedis,
    WorkerProcess,
    private_redis_server,
    recorded,
    run_oxide,
    start_worker,
    tick,
    wait_until,
    worker_env,
    write_config,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def fault_seed() -> int:
    return int(os.environ.get("OXIDE_FAULT_SEED", random.randrange(2**32)))


def leftovers(client: Any, queue: str) -> dict[str, int]:
    """How many jobs Redis still holds for ``queue``, by key (the wake-up tokens aside)."""
    ready, reserved, delayed, _notify, crashes = keys_of(queue)
    counts = {
        "ready": client.llen(ready),
        "reserved": client.zcard(reserved),
        "delayed": client.zcard(delayed),
        "crashes": client.hlen(crashes),
    }
    return {key: n for key, n in counts.items() if n}


def terminate(worker: WorkerProcess) -> int:
    """SIGTERM, and the exit status (the job in hand is finished first)."""
    if worker.proc.poll() is None:
        worker.proc.send_signal(signal.SIGTERM)
    return worker.wait(timeout=60)


def wait_while_progressing(count: Callable[[], int], goal: int, stall_secs: float = 30.0) -> None:
    """Wait until ``count()`` reaches ``goal`` or stops growing for ``stall_secs`` (the caller then
    finds what is missing): a liveness bound, generous next to the visibility timeouts used here."""
    last, since = count(), time.monotonic()
    while last < goal and time.monotonic() - since < stall_secs:
        time.sleep(0.1)
        now = count()
        if now != last:
            last, since = now, time.monotonic()


def failed_outcomes(workers: list[WorkerProcess]) -> list[str]:
    return [f"{w.log_path.name}: {o}" for w in workers for o in w.outcomes() if o["outcome"] == "failed"]


# -- kill -9 -----------------------------------------------------------------------------------------

JOBS = 3000
WORKERS = 3
KILL_VISIBILITY_SECS = 2.0
MIN_KILLS = 10  # fewer would not prove much: the drain must outlast them
MAX_KILLS = 30


@pytest.mark.parametrize("slots", [1, 8], ids=["1-slot", "8-slots"])
def test_kill_9_at_random_moments_loses_no_job(
    tmp_path: Path, redis_server_url: str, real_redis: Any, key_prefix: str, slots: int
) -> None:
    seed = fault_seed()
    rng = random.Random(seed)
    # With eight slots the jobs last longer (the same 3 to 6 ms of work before the effect and after,
    # times ``slower``), so that the drain still outlasts the kills; each kill may cost a duplicate per
    # job in flight.
    slower = 1 if slots == 1 else 8
    print(f"\nkill -9 seed {seed} (OXIDE_FAULT_SEED={seed} repeats its choices), {slots} slot(s)")
    write_config(tmp_path, visibility_timeout_secs=KILL_VISIBILITY_SECS)
    record = tmp_path / "record.txt"
    env = worker_env(redis_server_url, OXIDE_TEST_RECORD_FILE=str(record))
    queue = f"{key_prefix}kill"
    tokens = [f"k{n}" for n in range(JOBS)]
    # Half the batches come through our push script (which wakes idle workers), half are plain
    # LPUSHes, as a Rust producer or redis-cli would send them (found by polling).
    producer = redis_driver_for(real_redis)
    for first in range(0, JOBS, 100):
        # Work before the effect (a kill then re-runs the job) and after it (a kill then duplicates it).
        batch = [
            tick(t, sleep_ms=slower * rng.choice([1, 3, 5]), after_ms=slower * rng.choice([0, 3, 6]))
            for t in tokens[first : first + 100]
        ]
        if first // 100 % 2:
            producer.push_many(queue, batch)
        else:
            real_redis.lpush(f"oxide:queue:{queue}", *batch)

    # --tries high: a killed run counts as an attempt, and with the default of 1 the job would be
    # recorded as failed (MaxAttemptsExceeded) instead of run again.
    args = ("--queue", queue, "--tries", "1000", "--concurrency", str(slots))
    generation = Counter[int]()

    def launch(slot: int) -> WorkerProcess:
        generation[slot] += 1
        return start_worker(tmp_path, env, RECORDER_APP, *args, log_name=f"worker-{slot}-{generation[slot]}.log")

    pool = [launch(slot) for slot in range(WORKERS)]
    every: list[WorkerProcess] = list(pool)
    kills = 0
    started = time.monotonic()
    try:
        while kills < MAX_KILLS and len(set(recorded(record))) < JOBS:
            time.sleep(rng.uniform(0.2, 0.8))
            slot = rng.randrange(WORKERS)
            pool[slot].proc.send_signal(signal.SIGKILL)
            assert pool[slot].wait() == -signal.SIGKILL
            kills += 1
            pool[slot] = launch(slot)
            every.append(pool[slot])
        drained_while_killing = len(set(recorded(record)))
        wait_while_progressing(lambda: len(set(recorded(record))), JOBS)
        # A job the last kills hit after its effect is recorded yet still reserved by the dead worker: it
        # returns after the visibility timeout and runs again (a duplicate, counted below). Wait for that,
        # so that the clean stop's promise, nothing left reserved, is what the last assertion checks.
        wait_until(
            lambda: leftovers(real_redis, queue) == {},
            "the killed workers' reservations to expire and their jobs to run again",
            timeout=10 * KILL_VISIBILITY_SECS + 10,
        )
        # A SIGTERM before the handlers are in place would find Python's default (no job in hand then).
        for worker in pool:
            wait_until(lambda w=worker: "worker started" in w.log, "the last workers to start")
        statuses = [terminate(w) for w in pool]
    finally:
        for worker in every:
            worker.kill()
    elapsed = time.monotonic() - started
    done = recorded(record)
    counts = Counter(done)
    lost = sorted(set(tokens) - set(done))
    duplicates = len(done) - len(counts)
    print(
        f"kill -9 figures (seed {seed}): jobs={JOBS} workers={WORKERS} slots={slots} kills={kills} lost={len(lost)} "
        f"duplicates={duplicates} runs={len(done)} visibility={KILL_VISIBILITY_SECS}s wall={elapsed:.1f}s "
        f"(jobs done while killing: {drained_while_killing})"
    )
    assert statuses == [0] * WORKERS
    assert kills >= MIN_KILLS, f"the drain ended after {kills} kills: too fast to prove anything"
    assert lost == [], f"seed {seed}: lost {len(lost)} jobs: {lost[:20]}"
    assert set(done) == set(tokens)
    # A kill can repeat at most the jobs the killed worker had in flight: one per slot.
    assert duplicates <= kills * slots, (
        f"seed {seed}: {duplicates} duplicates for {kills} kills of {slots}-slot workers: {counts.most_common(5)}"
    )
    assert leftovers(real_redis, queue) == {}
    assert failed_outcomes(every) == []


# -- Redis restarts mid-drain, with persistence --------------------------------------------------------


class Producer(threading.Thread):
    """Pushes batches until stopped, through the oxide driver; remembers which pushes were acknowledged."""

    def __init__(self, url: str, queue: str) -> None:
        super().__init__(name="producer", daemon=True)
        self.driver = RedisDriver(
            ConnectionConfig(name="redis", driver="redis", url=url), client=connect(url, read_timeout_secs=5)
        )
        self.queue = queue
        self.acknowledged: list[str] = []
        self.unconfirmed: list[str] = []  # the push raised: in Redis or not, nobody was told it is
        self.halt = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.halt.is_set():
            batch = [f"p{n + i}" for i in range(10)]
            n += 10
            try:
                self.driver.push_many(self.queue, [tick(t, sleep_ms=1) for t in batch])
            except ConnectionUnavailable:
                self.unconfirmed += batch
                self.driver.close()
                self.halt.wait(0.1)
                continue
            self.acknowledged += batch
            self.halt.wait(0.02)
        self.driver.close()


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    with private_redis_server(tmp_path / "redis", persistent=True) as server:
        yield server


def test_redis_killed_and_restarted_mid_drain_loses_no_acknowledged_push(
    tmp_path: Path, persistent_redis: PrivateRedis
) -> None:
    import redis

    server = persistent_redis
    server.start()
    client = redis.Redis.from_url(server.url)
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert client.config_get("appendfsync") == {"appendfsync": "always"}
    queue = "restart"
    initial = [f"i{n}" for n in range(1000)]
    redis_driver_for(client).push_many(queue, [tick(t, sleep_ms=2) for t in initial])
    client.close()

    write_config(tmp_path, visibility_timeout_secs=2.0)
    record = tmp_path / "record.txt"
    env = worker_env(server.url, OXIDE_TEST_RECORD_FILE=str(record))
    # A run whose acknowledgement was lost with the server comes back and counts as an attempt.
    worker = start_worker(tmp_path, env, RECORDER_APP, "--queue", queue, "--tries", "20")
    producer = Producer(server.url, queue)
    outages = 0

    def restart(how: str, after_jobs: int) -> None:
        nonlocal outages
        wait_until(lambda: len(recorded(record)) >= after_jobs, f"{after_jobs} jobs to run", timeout=120)
        if how == "kill":
            server.kill()
        else:
            server.stop()
        outages += 1
        wait_until(lambda: worker.log.count("unavailable: redis connection") >= outages, "the worker to notice")
        server.start()

    try:
        producer.start()
        restart("kill", 300)  # SIGKILL: only what the append-only file already holds survives
        restart("stop", 700)  # SIGTERM: a clean SHUTDOWN
        producer.halt.set()
        producer.join(timeout=30)
        every = set(initial) | set(producer.acknowledged)
        wait_while_progressing(lambda: len(every & set(recorded(record))), len(every))
        status = terminate(worker)
    finally:
        producer.halt.set()
        worker.kill()
    done = recorded(record)
    lost = sorted(every - set(done))
    unconfirmed_ran = len(set(producer.unconfirmed) & set(done))
    print(
        f"\nredis restart figures: acknowledged={len(every)} lost={len(lost)} duplicates={len(done) - len(set(done))} "
        f"restarts=2 (kill -9, then SIGTERM) unconfirmed pushes={len(producer.unconfirmed)} "
        f"(of which ran: {unconfirmed_ran})"
    )
    assert status == 0, worker.log[-3000:]
    assert lost == []
    assert worker.log.count("is back after") >= 2
    assert failed_outcomes([worker]) == []


# -- a long job in a live worker ------------------------------------------------------------------------


def test_a_job_longer_than_the_visibility_timeout_runs_once_in_a_live_worker(
    tmp_path: Path, redis_server_url: str, real_redis: Any, key_prefix: str
) -> None:
    # Heartbeats come every 2/3 s, so a beat may be up to 4/3 s after the one before: 2/3 s of margin
    # for a loaded machine, where a 1 s timeout would leave 1/3 s.
    write_config(tmp_path, visibility_timeout_secs=2.0)
    record = tmp_path / "record.txt"
    env = worker_env(redis_server_url, OXIDE_TEST_RECORD_FILE=str(record))
    queue = f"{key_prefix}long"
    workers = [
        start_worker(tmp_path, env, RECORDER_APP, "--queue", queue, "--tries", "5", log_name=f"worker-{n}.log")
        for n in range(3)
    ]
    try:
        for worker in workers:
            wait_until(lambda w=worker: "worker started" in w.log, "the workers to start")
        # Two jobs of 6 s (three visibility timeouts) for three workers: one always idle and polling.
        redis_driver_for(real_redis).push_many(queue, [tick("long-1", 6000), tick("long-2", 6000)])
        wait_until(lambda: {"long-1", "long-2"} <= set(recorded(record)), "the long jobs to finish", timeout=60)
        # A second run, had one started, would be finished by now: SIGTERM lets the job in hand end.
        statuses = [terminate(w) for w in workers]
    finally:
        for worker in workers:
            worker.kill()
    assert statuses == [0, 0, 0]
    assert sorted(recorded(record)) == ["long-1", "long-2"]
    assert leftovers(real_redis, queue) == {}
    for worker in workers:
        assert "reservation" not in worker.log, worker.log  # never expired, never refused


# -- a listener the timeout cannot stop ----------------------------------------------------------------


def test_a_stuck_listener_makes_the_worker_exit_75_and_its_job_ends_in_failed_jobs(
    tmp_path: Path, redis_server_url: str, real_redis: Any, key_prefix: str
) -> None:
    write_config(tmp_path, visibility_timeout_secs=1.0, failed_database=True)
    record = tmp_path / "record.txt"
    env = worker_env(redis_server_url, OXIDE_TEST_RECORD_FILE=str(record))
    app = ("--app", "tests.integration.worker_apps:stubborn_app")
    for command in ("vendor:publish", "migrate"):
        result = run_oxide(tmp_path, env, *app, command, *(["queue"] if command == "vendor:publish" else []))
        assert result.returncode == 0, result.stderr
    queue = f"{key_prefix}stuck"
    real_redis.lpush(
        f"oxide:queue:{queue}",
        Job("test.stuck", "tests.integration.worker_apps.Stubborn", {"token": "s1"}, uuid="s1").to_json(),
    )
    statuses: list[int] = []
    workers: list[WorkerProcess] = []
    try:
        # A supervisor's loop: restart the worker while it exits 75.
        while len(workers) < 5:
            worker = start_worker(
                tmp_path,
                env,
                app[1],
                "--queue",
                queue,
                "--tries",
                "2",
                "--timeout",
                "1",
                log_name=f"worker-{len(workers)}.log",
            )
            workers.append(worker)
            wait_until(
                lambda w=worker: w.proc.poll() is not None or "outcome=failed" in w.log,
                "the worker to exit or record the job",
                timeout=60,
            )
            if worker.proc.poll() is None:
                statuses.append(terminate(worker))
                break
            statuses.append(worker.wait())
    finally:
        for worker in workers:
            worker.kill()
    assert statuses == [75, 75, 0], "\n".join(w.log[-1500:] for w in workers)
    assert "exiting with status 75" in workers[0].log
    assert recorded(record) == ["start-s1", "start-s1"]  # two tries, then never again
    listing = run_oxide(tmp_path, env, *app, "queue:failed", "--json")
    assert listing.returncode == 0, listing.stderr
    (row,) = json.loads(listing.stdout)
    assert row["uuid"] == "s1"
    assert row["queue"] == queue
    assert "MaxAttemptsExceeded" in row["exception"]
    assert "2 of those run(s) never finished" in row["exception"]
    assert leftovers(real_redis, queue) == {}


# -- a listener's own settings against the command line's -----------------------------------------------


def test_a_listeners_own_tries_backoff_and_timeout_override_the_command_line(
    tmp_path: Path, redis_server_url: str, real_redis: Any, key_prefix: str
) -> None:
    write_config(tmp_path)
    env = worker_env(redis_server_url)
    queue = f"{key_prefix}override"
    module = "tests.integration.worker_apps"
    for listener in ("OwnTries", "CliTries", "CliEverything", "OwnTimeout"):
        real_redis.lpush(
            f"oxide:queue:{queue}",
            Job("test.chore", f"{module}.{listener}", {"token": listener}, uuid=listener).to_json(),
        )
    # OwnTries 2 runs + CliTries 4 + CliEverything 1 (its retry waits 600 s or more) + OwnTimeout 1.
    result = run_oxide(
        tmp_path,
        env,
        "--app",
        f"{module}:override_app",
        "queue:work",
        "--queue",
        queue,
        "--tries=4",
        "--backoff=600",
        "--timeout=30",
        "--max-jobs=8",
        "--max-time=60",
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "reason=max_jobs" in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if "outcome=" in line]

    def outcomes(listener: str) -> list[str]:
        return [line.split("outcome=")[1].split()[0] for line in lines if f"listener={module}.{listener} " in line]

    def delays(listener: str) -> list[float]:
        return [
            float(line.split("delay_s=")[1].split()[0])
            for line in lines
            if f"listener={module}.{listener} " in line and "delay_s=" in line
        ]

    assert outcomes("OwnTries") == ["retry", "failed"]
    assert 0.05 <= delays("OwnTries")[0] <= 0.07
    assert outcomes("CliTries") == ["retry", "retry", "retry", "failed"]
    assert delays("CliTries") == [0.0, 0.0, 0.0]
    assert outcomes("CliEverything") == ["retry"]
    assert 600 <= delays("CliEverything")[0] <= 750
    assert outcomes("OwnTimeout") == ["failed"]
    assert "JobTimedOut: the listener ran longer than its 0.5s timeout" in result.stderr
    assert leftovers(real_redis, queue) == {"delayed": 1}  # CliEverything's retry, ten minutes away
