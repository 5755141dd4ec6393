"""I/O-bound figures: 20 ms jobs, each system's own worker command with eight jobs at once.

Every command is what a user would type (``oxide queue:work --concurrency 8``, ``dramatiq -p 1 -t
8``, ``huey_consumer -w 8 -k thread``, ``celery worker -P threads -c 8``, ``arq`` with ``max_jobs =
8``, ``rq worker-pool -n 8``), run as a process group of its own. The jobs are enqueued first with
each system's producer API (not timed); the rate is timed inside the jobs, from the first start
to the last (:mod:`bench.tick`, append mode, so that a command of several processes counts as one);
the resident memory is the sum over the command's process and all its descendants, read when
the last job starts. Eight jobs of 20 ms at once cannot go faster than 400 jobs/s: that is the ceiling of every
eight-slot figure here; ``--processes 2`` doubles it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bench.tick import read_result

if TYPE_CHECKING:
    from bench.run import Figure, Settings

ROOT = Path(__file__).resolve().parent.parent

# key: (label, system, the command's arguments after the program)
OXIDE = [sys.executable, "-m", "oxide", "-q", "--app", "bench.io_tasks:oxide_app"]
SYSTEMS: dict[str, tuple[str, str]] = {
    "io_oxide_1": ("oxide queue:work, 1 slot (def listener)", "oxide"),
    "io_oxide": ("oxide queue:work --concurrency 8 (def listener)", "oxide"),
    "io_oxide_async": ("oxide queue:work --concurrency 8 (async def listener)", "oxide"),
    "io_oxide_pool": ("oxide queue:work --processes 2 --concurrency 8 (def listener)", "oxide"),
    "io_dramatiq": ("dramatiq -p 1 -t 8", "dramatiq"),
    "io_huey": ("huey_consumer -w 8 -k thread", "huey"),
    "io_celery": ("celery worker -P threads -c 8", "celery"),
    "io_arq": ("arq, max_jobs = 8", "arq"),
    "io_rq": ("rq worker-pool -n 8", "rq"),
}
PEER_KEYS = ("io_dramatiq", "io_huey", "io_celery", "io_arq", "io_rq")
QUEUE_TOML = """default = "redis"
[connections.redis]
driver = "redis"
url = "${BENCH_REDIS_URL}"
block_timeout_secs = 1
[failed]
driver = "none"
"""


BASELINES = {"io_oxide": "io_dramatiq", "io_oxide_async": "io_dramatiq", "io_oxide_pool": "io_oxide"}
TARGETS = {"io_oxide": ">= 1.1x", "io_oxide_async": ">= 1.1x", "io_oxide_pool": ">= 1.7x"}


def figures(s: Settings) -> list[Figure]:
    from bench.run import Figure

    out: list[Figure] = []
    for key, (label, _system) in SYSTEMS.items():
        out.append(
            Figure(key, f"{label}, 20 ms jobs", "jobs/s", baseline=BASELINES.get(key), target=TARGETS.get(key, ""))
        )
        out.append(Figure(f"{key}_rss", f"{label}: resident memory", "MB", higher_is_better=False))
    return out


def _bin(name: str) -> str:
    """A console script of the environment the bench runs in."""
    return str(Path(sys.executable).parent / name)


def command(key: str, url: str, config_dir: Path) -> list[str]:
    if key.startswith("io_oxide"):
        work = [*OXIDE, "--config", str(config_dir), "queue:work", "--queue", "bench"]
        if key == "io_oxide_1":
            return work
        slots = ["--concurrency", "8"]
        return [*work, *slots, "--processes", "2"] if key == "io_oxide_pool" else [*work, *slots]
    return {
        "io_dramatiq": [sys.executable, "-m", "dramatiq", "bench.io_tasks", "-p", "1", "-t", "8", "-Q", "bench"],
        "io_huey": [_bin("huey_consumer"), "bench.io_tasks.huey", "-w", "8", "-k", "thread", "-q"],
        "io_celery": [
            *[_bin("celery"), "-A", "bench.io_tasks:celery", "worker", "-P", "threads", "-c", "8", "-Q", "bench"],
            *["-l", "WARNING", "--without-heartbeat", "--without-mingle", "--without-gossip"],
        ],
        "io_arq": [_bin("arq"), "bench.io_tasks.ArqSettings"],
        "io_rq": [_bin("rq"), "worker-pool", "-n", "8", "-u", url, "-q", "bench"],
    }[key]


def enqueue(key: str, url: str, n: int) -> None:
    """``n`` jobs for ``key``'s system, through its own producer API."""
    from bench import io_tasks

    if key.startswith("io_oxide"):
        from bench.workers import oxide_app
        from oxide.wire import Job

        listener = io_tasks.IoWaitAsyncListener if key == "io_oxide_async" else io_tasks.IoWaitListener
        app = oxide_app(url, 90.0)
        name = f"{listener.__module__}.{listener.__qualname__}"
        app.push_many("redis", "bench", [Job(io_tasks.IoWait.event_name, name, {"n": i}) for i in range(n)])
        app.close()
    elif key == "io_dramatiq":
        actor = io_tasks.dramatiq_actor(url)
        for _ in range(n):
            actor.send()
    elif key == "io_huey":
        task = io_tasks.huey_app(url).task()(io_tasks.io_job)
        for _ in range(n):
            task()
    elif key == "io_celery":
        celery_task = io_tasks.celery_app(url).task(name="bench.io_job")(io_tasks.io_job)
        for _ in range(n):
            celery_task.delay()
    elif key == "io_arq":
        asyncio.run(_arq_enqueue(url, n))
    else:
        from redis import Redis
        from rq import Queue

        connection = Redis.from_url(url)
        queue = Queue("bench", connection=connection)
        with connection.pipeline() as pipe:
            for _ in range(n):
                queue.enqueue(io_tasks.io_job, pipeline=pipe)
            pipe.execute()


async def _arq_enqueue(url: str, n: int) -> None:
    from arq import create_pool
    from arq.connections import RedisSettings

    pool = await create_pool(RedisSettings.from_dsn(url))
    for _ in range(n):
        await pool.enqueue_job("io_job_async")
    await pool.aclose()


def tree_rss_bytes(root: int) -> int:
    """Resident memory of ``root`` and every process descended from it, summed (Linux /proc).

    By parentage, not by process group: a pool's members run in sessions of their own.
    """
    page = os.sysconf("SC_PAGE_SIZE")
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])  # after the name: state, ppid, ...
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, ppid in parents.items() if ppid in tree} - tree
        tree |= more
        grew = bool(more)
    total = 0
    for pid in tree:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
    return total


def measure(key: str, url: str, n: int, workdir: Path) -> tuple[float, float]:
    """Run ``key``'s command on ``n`` queued jobs: (jobs/s, resident MB of the whole command)."""
    from bench.run import flush

    flush(url)
    enqueue(key, url, n)
    config_dir = workdir / "io-config"
    config_dir.mkdir(exist_ok=True)
    (config_dir / "queue.toml").write_text(QUEUE_TOML)
    out = workdir / f"{key}.result"
    out.unlink(missing_ok=True)
    system = SYSTEMS[key][1]
    env = dict(
        os.environ,
        BENCH_N=str(n),
        BENCH_OUT=str(out),
        BENCH_TICK="append",  # one line per job: the processes of one command are timed together
        BENCH_SYSTEM=system,
        BENCH_REDIS_URL=url,
        PYTHONPATH=str(ROOT),
    )
    log_path = workdir / f"{key}.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            command(key, url, config_dir), cwd=workdir, env=env, stdout=log, stderr=log, start_new_session=True
        )
    deadline = time.monotonic() + 60 + n / 10
    try:
        while time.monotonic() < deadline:
            result = read_result(str(out), n)
            if result is not None:
                return result[0], tree_rss_bytes(proc.pid) / 2**20
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(
            f"{key}: no result (exit status {proc.poll()}); its log ends:\n{log_path.read_text()[-2000:]}"
        )
    finally:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def cases(url: str, s: Settings, workdir: Path, figs: dict[str, Figure]) -> list[tuple[str, Callable[[], float]]]:
    """The run's cases: each measures one command's rate and records its memory beside it."""

    def case(key: str) -> Callable[[], float]:
        def run() -> float:
            rate, rss_mb = measure(key, url, s.n_io, workdir)
            figs[f"{key}_rss"].runs.append(rss_mb)
            return rate

        return run

    return [(key, case(key)) for key in SYSTEMS]
