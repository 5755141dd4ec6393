"""The benchmark run: every figure measured in one process tree, on one Redis, interleaved.

``python -m bench [--smoke] [--redis-url URL] [--out DIR] ...`` (``nox -s bench`` runs it).
Without ``--redis-url`` a private ``redis-server`` is started on a free port from 6430-6439 and
stopped at the end; with one, **the bench empties that database** between cases (FLUSHDB),
since the peers' keys cannot all be given a prefix. See docs/performance.md for what each
figure means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import cluster, designs, ops
from bench.tick import read_result

ROOT = Path(__file__).resolve().parent.parent
PEERS = ("rq-simple", "rq-fork", "dramatiq", "huey", "arq", "celery")
WORKER_CMD = "from bench.workers import main; main()"


@dataclass
class Figure:
    """One measured quantity: its runs, and what it is compared with."""

    key: str
    label: str
    unit: str
    runs: list[float] = field(default_factory=list)
    baseline: str | None = None  # key of the figure this one is a ratio to
    target: str = ""  # the target, in words
    higher_is_better: bool = True
    errors: list[str] = field(default_factory=list)  # why a run could not be measured

    @property
    def median(self) -> float:
        return statistics.median(self.runs) if self.runs else float("nan")


@dataclass
class Settings:
    n_produce: int
    n_drain: int
    n_failed: int
    repeats: int
    depth: int
    depth_jobs: int
    rss_jobs: int
    smoke: bool
    n_io: int = 2_000  # 20 ms jobs per I/O-bound figure (bench/iobound.py)
    # Jobs per run of the one-slot take figures (the raw BRPOP loop, oxide's drains, the take
    # designs): at 5,000-20,000 jobs/s, 2,000 jobs were a tenth of a second, which one stall of a
    # shared machine moved by a third; the peers, at 60-5,000 jobs/s, keep n_drain.
    n_take: int = 20_000


# -- Redis ----------------------------------------------------------------------------------------


@contextmanager
def private_redis() -> Iterator[str]:
    """A redis-server of our own on a free port in 6430-6439, with no persistence; stopped after."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("bench: redis-server is not on PATH; install it or pass --redis-url")
    for port in range(6430, 6440):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                break
    else:
        raise SystemExit("bench: ports 6430-6439 are all taken; pass --redis-url")
    with tempfile.TemporaryDirectory(prefix="oxide-bench-redis-") as workdir:
        cmd = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"redis://127.0.0.1:{port}/0"
        try:
            import redis

            client = redis.Redis.from_url(url)
            for _ in range(100):
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.05)
            client.close()
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


SERVER_TIME_OF = {
    "raw_brpop": "brpop",
    "drain": "evalsha",
    "drain_plain": "brpop",
    "drain_prefetch": "evalsha",
    **designs.SERVER_COMMAND,
}


def reset_command_stats(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.config_resetstat()
    client.close()


def usec_per_call(url: str, command: str) -> float | None:
    import redis

    client = redis.Redis.from_url(url)
    stats = client.info("commandstats").get(f"cmdstat_{command}")
    client.close()
    return None if stats is None else float(stats["usec_per_call"])


def flush(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


# -- producers and the raw take loop, in this process ----------------------------------------------


def timed(n: int, body: Callable[[], object]) -> float:
    start = time.perf_counter()
    body()
    return n / (time.perf_counter() - start)


def raw_job(i: int) -> dict[str, Any]:
    return {"event_name": "bench.noop", "listener_type": "bench.workers.NoopListener", "payload": {"n": i}}


def raw_lpush(url: str, n: int) -> float:
    import redis

    client = redis.Redis.from_url(url)

    def loop() -> None:
        for i in range(n):
            client.lpush("oxide:queue:raw", json.dumps(raw_job(i), separators=(",", ":")))

    return timed(n, loop)


def raw_lpush_pipelined(url: str, n: int) -> float:
    import redis

    client = redis.Redis.from_url(url)

    def loop() -> None:
        with client.pipeline(transaction=False) as pipe:
            for i in range(n):
                pipe.lpush("oxide:queue:raw", json.dumps(raw_job(i), separators=(",", ":")))
            pipe.execute()

    return timed(n, loop)


def raw_brpop(url: str, n: int, cpu_runs: list[float] | None = None) -> float:
    import redis

    client = redis.Redis.from_url(url)
    from bench.workers import noop_job

    body = noop_job(0).to_json()
    for start in range(0, n, 10_000):
        client.lpush("raw-low", *[body] * min(10_000, n - start))
    keys = ["raw-high", "raw-default", "raw-low"]  # the same three-queue priority take as the worker's

    def loop() -> None:
        for _ in range(n):
            _key, value = client.brpop(keys, timeout=1)
            json.loads(value)

    cpu = time.process_time()
    rate = timed(n, loop)
    if cpu_runs is not None:  # the client CPU per take, beside the take designs' (bench/designs.py)
        cpu_runs.append((time.process_time() - cpu) / n * 1e6)
    return rate


def oxide_push(url: str, n: int) -> float:
    from bench.workers import noop_job, oxide_app

    app = oxide_app(url, 90.0)
    jobs = [noop_job(i) for i in range(n)]
    app.driver("redis").client.ping()  # connect outside the timing, as the raw client does on its first call

    def loop() -> None:
        for job in jobs:
            app.push("redis", "bench-low", job)

    rate = timed(n, loop)
    app.close()
    return rate


def oxide_push_many(url: str, n: int) -> float:
    from bench.workers import noop_job, oxide_app

    app = oxide_app(url, 90.0)
    jobs = [noop_job(i) for i in range(n)]
    app.driver("redis").client.ping()
    rate = timed(n, lambda: app.push_many("redis", "bench-low", jobs))
    app.close()
    return rate


def failed_inserts(dialect: str, n: int, workdir: Path) -> float:
    """``failed_jobs`` rows written per second through the store the worker uses, one commit each."""
    from datetime import UTC, datetime

    from oxide.config import parse_database_url
    from oxide.db import connect_database
    from oxide.db.migrations import Migrator, load_migrations, publish
    from oxide.failed import FailedJob
    from oxide.failed.store import DatabaseFailedJobProvider

    schema = f"oxide_bench_{os.getpid()}"
    admin = None
    if dialect == "sqlite":
        url = f"sqlite:///{workdir / 'failed.sqlite'}"
        (workdir / "failed.sqlite").unlink(missing_ok=True)
    else:
        import psycopg

        base = os.environ.get("OXIDE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
        admin = psycopg.connect(base, autocommit=True, connect_timeout=3)
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.execute(f'CREATE SCHEMA "{schema}"')
        url = f"{base}?options=-csearch_path%3D{schema}"
    try:
        database = connect_database(parse_database_url(url), workdir, create=True)
        migrations = workdir / "migrations"
        publish("queue", migrations, force=True)
        Migrator(database).migrate(load_migrations(migrations))
        store = DatabaseFailedJobProvider(database)
        now = datetime.now(UTC)
        records = [
            FailedJob(
                uuid=f"bench-{i}-{time.time_ns()}",
                connection="redis",
                queue="bench",
                event_name="bench.noop",
                listener_type="bench.workers.NoopListener",
                payload='{"n":1}',
                exception="Traceback (most recent call last):\n  ...\nRuntimeError: bench",
                failed_at=now,
            )
            for i in range(n)
        ]

        def loop() -> None:
            for record in records:
                store.log(record)

        rate = timed(n, loop)
        database.close()
        return rate
    finally:
        if admin is not None:
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            admin.close()


# -- workers, each in a process of its own ----------------------------------------------------------


def drain(url: str, system: str, n: int, workdir: Path, *extra: str, rss_at: int = 0) -> tuple[float, int, int]:
    """Enqueue ``n`` jobs and run one worker of ``system`` on them; its rate from the job-side clock."""
    flush(url)
    out = workdir / f"{system}.result"
    out.unlink(missing_ok=True)
    env = dict(os.environ, BENCH_N=str(n), BENCH_OUT=str(out), BENCH_RSS_AT=str(rss_at), PYTHONPATH=str(ROOT))
    if system == "rq-fork":
        env["BENCH_TICK"] = "append"
    log = (workdir / f"{system}.log").open("w")
    cmd = [sys.executable, "-c", WORKER_CMD, system, url, str(n), *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 30 + n / 20
    try:
        while time.monotonic() < deadline:
            result = read_result(str(out), n)
            if result is not None:
                return result
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        log.flush()
        tail = (workdir / f"{system}.log").read_text()[-2000:]
        raise RuntimeError(f"{system}: no result (exit status {proc.poll()}); its log ends:\n{tail}")
    finally:
        # The worker and whatever it forked share the process group we made for it.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=5)
                break
            except subprocess.TimeoutExpired:
                continue
        log.close()


def help_secs() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "oxide", "--help"], check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - start


# -- the run --------------------------------------------------------------------------------------


def figures_for(s: Settings) -> dict[str, Figure]:
    fs = [
        Figure("raw_lpush", "raw LPUSH, one per round trip", "jobs/s"),
        Figure("raw_pipeline", "raw LPUSH, pipelined", "jobs/s"),
        Figure("raw_brpop", "raw BRPOP + json.loads, one per round trip", "jobs/s"),
        Figure("push", "oxide push (one job per call)", "jobs/s", baseline="raw_lpush", target=">= 0.9x"),
        Figure("push_many", "oxide push_many (bulk)", "jobs/s", baseline="raw_pipeline", target=">= 0.8x"),
        Figure("drain", "oxide worker, reservations on (default)", "jobs/s", baseline="raw_brpop", target=">= 0.9x"),
        Figure("drain_plain", "oxide worker, reservations off", "jobs/s", baseline="raw_brpop"),
        Figure("drain_prefetch", "oxide worker, --prefetch 50", "jobs/s", baseline="raw_brpop", target=">= 3x"),
        Figure("drain_c8", "oxide worker, --concurrency 8", "jobs/s", baseline="raw_brpop"),
    ]
    fs += designs.figures(Figure)
    fs += [Figure(f"peer_{p}", f"{p} worker", "jobs/s", baseline="raw_brpop") for p in PEERS]
    fs += [
        Figure("failed_sqlite", "failed_jobs inserts, SQLite", "rows/s"),
        Figure("failed_postgresql", "failed_jobs inserts, PostgreSQL", "rows/s"),
        Figure("depth_small", f"oxide worker, first {s.depth_jobs} of 1k queued", "jobs/s"),
        Figure(
            "depth_large",
            f"oxide worker, first {s.depth_jobs} of {s.depth:,} queued",
            "jobs/s",
            baseline="depth_small",
            target=">= 0.9x",
        ),
        Figure(
            "rss_growth",
            f"worker RSS growth, job 1,000 to {s.rss_jobs:,}",
            "MB",
            target="< 10 MB",
            higher_is_better=False,
        ),
        Figure(
            "rss_growth_c8",
            f"worker RSS growth, --concurrency 8, job 1,000 to {s.rss_jobs:,}",
            "MB",
            target="< 10 MB",
            higher_is_better=False,
        ),
        Figure("help", "oxide --help, wall time", "s", target="< 0.3 s", higher_is_better=False),
        *ops.figures(Figure, s.depth),
        *cluster.figures(Figure),
    ]
    from bench import iobound

    fs += iobound.figures(s)
    # Where the time of one take goes on the server: INFO commandstats' usec_per_call of the take's command.
    fs += [
        Figure("srv_raw_brpop", "server time per take: raw BRPOP", "us", higher_is_better=False),
        Figure("srv_drain", "server time per take: reserve script (ack + take)", "us", higher_is_better=False),
        Figure("srv_drain_plain", "server time per take: BRPOP, reservations off", "us", higher_is_better=False),
        Figure("srv_drain_prefetch", "server time per take: reserve script, 50 jobs", "us", higher_is_better=False),
    ]
    return {f.key: f for f in fs}


def run(url: str, s: Settings, workdir: Path, only: set[str] | None) -> dict[str, Figure]:
    figures = figures_for(s)
    n, nd, nt = s.n_produce, s.n_drain, s.n_take

    def wanted(key: str) -> bool:
        return only is None or key in only

    cases: list[tuple[str, Callable[[], float]]] = [
        ("raw_lpush", lambda: raw_lpush(url, n)),
        ("push", lambda: oxide_push(url, n)),
        ("raw_pipeline", lambda: raw_lpush_pipelined(url, n)),
        ("push_many", lambda: oxide_push_many(url, n)),
        ("raw_brpop", lambda: raw_brpop(url, nt, figures["cpu_raw_brpop"].runs)),
        ("drain", lambda: drain(url, "oxide", nt, workdir)[0]),
        ("drain_plain", lambda: drain(url, "oxide", nt, workdir, "--visibility", "0")[0]),
        ("drain_prefetch", lambda: drain(url, "oxide", nt, workdir, "--prefetch", "50")[0]),
        ("drain_c8", lambda: drain(url, "oxide", nt, workdir, "--concurrency", "8")[0]),
        *designs.cases(url, nt, n, figures),
        *[(f"peer_{p}", lambda p=p: drain(url, p, nd, workdir)[0]) for p in PEERS],  # type: ignore[misc]
        ("failed_sqlite", lambda: failed_inserts("sqlite", s.n_failed, workdir)),
        ("failed_postgresql", lambda: failed_inserts("postgresql", s.n_failed, workdir)),
        ("depth_small", lambda: drain(url, "oxide", s.depth_jobs, workdir, "--depth", "1000")[0]),
        ("depth_large", lambda: drain(url, "oxide", s.depth_jobs, workdir, "--depth", str(s.depth))[0]),
        ("help", help_secs),
        *ops.cases(url, s.depth),
        *cluster.cases(url, s.n_drain, s.n_produce // 4, workdir),
    ]
    from bench import iobound

    cases += iobound.cases(url, s, workdir, figures)
    # Repeats are interleaved, so a noisy minute on a shared machine touches every figure alike.
    for repeat in range(s.repeats):
        for key, measure in cases:
            if not wanted(key):
                continue
            flush(url)
            reset_command_stats(url)
            try:
                value = measure()
            except Exception as exc:
                print(f"bench: {key}: {type(exc).__name__}: {exc}", file=sys.stderr)
                figures[key].errors.append(f"{type(exc).__name__}: {exc}")
                continue
            figures[key].runs.append(value)
            command = SERVER_TIME_OF.get(key)
            if command is not None and (usec := usec_per_call(url, command)) is not None:
                figures[f"srv_{key}"].runs.append(usec)
            print(f"[{repeat + 1}/{s.repeats}] {figures[key].label}: {value:,.3f} {figures[key].unit}", flush=True)
    if wanted("rss_growth"):
        _rate, rss_first, rss_last = drain(url, "oxide", s.rss_jobs, workdir, rss_at=1000)
        figures["rss_growth"].runs.append((rss_last - rss_first) / 2**20)
        print(f"worker RSS growth over {s.rss_jobs} jobs: {figures['rss_growth'].runs[-1]:.2f} MB", flush=True)
    if wanted("rss_growth_c8"):
        _rate, rss_first, rss_last = drain(url, "oxide", s.rss_jobs, workdir, "--concurrency", "8", rss_at=1000)
        figures["rss_growth_c8"].runs.append((rss_last - rss_first) / 2**20)
        print(f"worker RSS growth over {s.rss_jobs} jobs at 8 slots: {figures['rss_growth_c8'].runs[-1]:.2f} MB")
    flush(url)
    return figures


def machine_facts(url: str) -> dict[str, str]:
    import redis

    client = redis.Redis.from_url(url)
    info = client.info("server")
    client.close()
    from importlib.metadata import PackageNotFoundError, version

    def v(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "absent"

    return {
        "cores": str(os.cpu_count()),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "redis": str(info.get("redis_version")),
        "redis-py": v("redis"),
        "hiredis": v("hiredis"),
        "peers": ", ".join(f"{p} {v(p)}" for p in ("rq", "dramatiq", "huey", "arq", "celery")),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny job counts, one repeat, no targets (CI)")
    parser.add_argument("--redis-url", help="use this Redis database instead of a private server: it is FLUSHed")
    parser.add_argument("--out", type=Path, help="where to write results (default bench/results, smoke: a temp dir)")
    parser.add_argument("--repeats", type=int, help="runs of each figure (default 3, smoke 1)")
    parser.add_argument(
        "--depth", type=int, help="deep-queue size for the growth figure (default 1000000, as the target says)"
    )
    parser.add_argument("--only", help="comma-separated figure keys to measure (default: all)")
    args = parser.parse_args(argv)
    smoke = args.smoke
    settings = Settings(
        n_produce=300 if smoke else 20_000,
        n_drain=300 if smoke else 2_000,
        n_failed=100 if smoke else 500,
        repeats=args.repeats or (1 if smoke else 3),
        depth=args.depth or (3_000 if smoke else 1_000_000),
        depth_jobs=200 if smoke else 1_000,
        rss_jobs=2_000 if smoke else 200_000,
        smoke=smoke,
        n_io=40 if smoke else 2_000,
        n_take=300 if smoke else 20_000,
    )
    only = set(args.only.split(",")) if args.only else None
    # SIGTERM (nox interrupted, CI cancelled) unwinds like Ctrl-C, so the private server and the worker stop too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    out = args.out or (Path(tempfile.mkdtemp(prefix="oxide-bench-smoke-")) if smoke else ROOT / "bench" / "results")
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="oxide-bench-") as tmp,
        nullcontext(args.redis_url) if args.redis_url else private_redis() as url,
    ):
        facts = machine_facts(url)
        figures = run(url, settings, Path(tmp), only)
    facts["run_secs"] = f"{time.monotonic() - started:.0f}"
    facts["command"] = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    from bench.report import write_report

    write_report(out, figures, facts, settings, targets=not smoke)
    (out / "results.json").write_text(
        json.dumps(
            {"facts": facts, "settings": asdict(settings), "figures": [asdict(f) for f in figures.values()]}, indent=2
        )
        + "\n"
    )
    print(f"bench: results in {out} ({facts['run_secs']} s)")
    failed = [f"{f.key} ({len(f.errors)} of {len(f.errors) + len(f.runs)} runs)" for f in figures.values() if f.errors]
    if failed:
        # A figure that could not be measured is a broken bench, not a slow one: the smoke run in CI must fail.
        print(f"bench: failed to measure: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


@contextmanager
def nullcontext(value: str) -> Iterator[str]:
    yield value
