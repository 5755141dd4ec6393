"""Cluster figures: three priority lists on a 3-master Redis Cluster against the same on one server.

Each priority list (``high,default,low``) is a connection of its own whose prefix holds a hash tag
(``bench:{l0}:`` ...), chosen so that on the cluster the three lists live on three different masters.
On the one server the same names are used. Three worker processes, one per list, drain at once;
three producer processes, one per list, push one job per call at once. Rates are of the whole:
jobs over the time from the first job to the last, across the three processes (``bench.tick`` in
append mode for drains; each producer's own start and end for pushes).

``push_wait``: one producer, one job per call, on the cluster, with ``wait_replicas = 1`` (WAIT for
the master's replica after each push) against the same without: what the durability knob costs.

The cluster (three masters, three replicas, from ``redis-server`` on free ports 7300-7399) is
started at the first cluster case and stopped when the bench exits.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["cases", "figures"]

ROOT = Path(__file__).resolve().parent.parent
WORKER = "from bench.cluster import process_main; process_main()"
QUEUES = ("bench-high", "bench-default", "bench-low")
_cluster: list[Any] = []


def figures(figure: Callable[..., Any]) -> list[Any]:
    """The figures of this module, built with bench.run's Figure."""
    return [
        figure("single_drain3", "3 workers, 3 priority lists, one server", "jobs/s"),
        figure("cluster_drain3", "3 workers, 3 priority lists, 3-master cluster", "jobs/s", baseline="single_drain3"),
        figure("single_push3", "3 producers, 3 priority lists, one server", "jobs/s"),
        figure("cluster_push3", "3 producers, 3 priority lists, 3-master cluster", "jobs/s", baseline="single_push3"),
        figure("cluster_push1", "oxide push on the cluster, one producer", "jobs/s"),
        figure("push_wait", "oxide push, wait_replicas = 1, cluster", "jobs/s", baseline="cluster_push1"),
    ]


def cases(url: str, n_drain: int, n_push: int, workdir: Path) -> list[tuple[str, Callable[[], float]]]:
    """(figure key, measurement) pairs for bench.run's loop."""
    return [
        ("single_drain3", lambda: drain3(single_lists(url), n_drain, workdir)),
        ("cluster_drain3", lambda: drain3(cluster_lists(), n_drain, workdir)),
        ("single_push3", lambda: push3(single_lists(url), n_push, workdir)),
        ("cluster_push3", lambda: push3(cluster_lists(), n_push, workdir)),
        ("cluster_push1", lambda: push_one(cluster_lists()[0], n_push // 3, wait_replicas=0)),
        ("push_wait", lambda: push_one(cluster_lists()[0], n_push // 3, wait_replicas=1)),
    ]


def single_lists(url: str) -> list[tuple[str, str]]:
    return [(url, f"bench:{{l{i}}}:") for i in range(3)]


def cluster_lists() -> list[tuple[str, str]]:
    """Three (url, prefix) pairs whose hash tags live on three different masters."""
    if not _cluster:
        from tests.cluster.servers import LocalCluster, binaries

        found = binaries()
        if found is None:
            raise RuntimeError("redis-server and redis-cli are needed for the cluster figures")
        cluster = LocalCluster.start(*found, Path(tempfile.mkdtemp(prefix="oxide-bench-cluster-")))
        atexit.register(cluster.stop)
        chosen: dict[int, str] = {}
        for i in range(100):
            chosen.setdefault(cluster.master_of(f"{{l{i}}}").port, f"bench:{{l{i}}}:")
            if len(chosen) == 3:
                break
        _cluster.append((cluster, [(cluster.url, p) for p in chosen.values()]))
    lists: list[tuple[str, str]] = _cluster[0][1]
    return lists


def _app(url: str, prefix: str, wait_replicas: int = 0) -> Any:
    from bench.workers import Noop, NoopListener
    from oxide import App, Mode
    from oxide.config import Config, ConnectionConfig, DatabaseConfig

    connection = ConnectionConfig(
        name="redis", driver="redis", url=url, prefix=prefix, block_timeout_secs=1.0, wait_replicas=wait_replicas
    )
    config = Config(Path("config"), Path(), "redis", {"redis": connection}, "none", DatabaseConfig("sqlite", {}))
    app = App(config=config)
    app.listen(Noop, NoopListener, Mode.queue("redis"))
    return app


def _clear(lists: list[tuple[str, str]]) -> None:
    for url, prefix in lists:
        app = _app(url, prefix)
        client = app.driver("redis").client
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        app.close()


def _run_all(lists: list[tuple[str, str]], mode: str, n: int, workdir: Path, env: dict[str, str]) -> list[Path]:
    outs = [workdir / f"{mode}-{i}.out" for i in range(len(lists))]
    procs = []
    for (url, prefix), out in zip(lists, outs, strict=True):
        out.unlink(missing_ok=True)
        cmd = [sys.executable, "-c", WORKER, mode, url, prefix, str(n), str(out)]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL))
    return _wait(procs, outs, mode, n)


def _wait(procs: list[subprocess.Popen[bytes]], outs: list[Path], mode: str, n: int) -> list[Path]:
    deadline = time.monotonic() + 60 + n / 50
    try:
        while time.monotonic() < deadline:
            if mode == "push" and all(p.poll() is not None for p in procs):
                return outs
            if mode == "drain" and _drained(outs[0].with_name("drain.ticks"), n * len(procs)):
                return outs
            time.sleep(0.05)
        raise RuntimeError(f"cluster bench: {mode} did not finish")
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)


def _drained(ticks: Path, total: int) -> bool:
    from bench.tick import read_result

    return read_result(str(ticks), total) is not None


def drain3(lists: list[tuple[str, str]], n: int, workdir: Path) -> float:
    """Fill each list with n jobs over its three queues (untimed), then drain with one worker per list at once."""
    from bench.tick import read_result
    from bench.workers import noop_job

    _clear(lists)
    for url, prefix in lists:
        app = _app(url, prefix)
        for index, queue in enumerate(QUEUES):
            app.push_many("redis", queue, [noop_job(i) for i in range(n // 3 + (index < n % 3))])
        app.close()
    ticks = workdir / "drain.ticks"
    ticks.unlink(missing_ok=True)
    env = dict(os.environ, BENCH_N=str(n), BENCH_OUT=str(ticks), BENCH_TICK="append", PYTHONPATH=str(ROOT))
    _run_all(lists, "drain", n, workdir, env)
    result = read_result(str(ticks), n * len(lists))
    assert result is not None
    return result[0]


def push3(lists: list[tuple[str, str]], n: int, workdir: Path) -> float:
    """Three producers, one per list, each pushing n jobs one per call, at once."""
    _clear(lists)
    outs = _run_all(lists, "push", n, workdir, dict(os.environ, PYTHONPATH=str(ROOT)))
    spans = [tuple(map(float, out.read_text().split())) for out in outs]
    rate = n * len(lists) / (max(end for _, end in spans) - min(start for start, _ in spans))
    _clear(lists)
    return rate


def push_one(target: tuple[str, str], n: int, *, wait_replicas: int) -> float:
    from bench.workers import noop_job

    _clear([target])
    app = _app(*target, wait_replicas=wait_replicas)
    jobs = [noop_job(i) for i in range(n)]
    app.push("redis", QUEUES[0], jobs[0])  # connect and learn the slots outside the timing
    start = time.perf_counter()
    for job in jobs[1:]:
        app.push("redis", QUEUES[0], job)
    rate = (n - 1) / (time.perf_counter() - start)
    app.close()
    _clear([target])
    return rate


def process_main() -> None:
    """A producer (``push``) or a worker (``drain``) on one list: MODE URL PREFIX N OUT."""
    mode, url, prefix, n, out = sys.argv[1:6]
    app = _app(url, prefix)
    if mode == "push":
        from bench.workers import noop_job

        jobs = [noop_job(i) for i in range(int(n))]
        app.push("redis", QUEUES[0], noop_job(-1))  # connect (and learn the slots) outside the timing
        start = time.time()
        for job in jobs:
            app.push("redis", QUEUES[0], job)
        Path(out).write_text(f"{start!r} {time.time()!r}\n")
        return
    from oxide.worker import Worker, WorkerOptions

    Worker(app, "redis", QUEUES, WorkerOptions(handle_signals=True)).run()
