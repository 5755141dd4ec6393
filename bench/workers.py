"""One worker process per measurement: ``bench.workers.main(SYSTEM URL N [options])``.

Run as ``python -c "from bench.workers import main; main()" ...`` (what the orchestrator does) so
that the job functions live in ``bench.workers``, not ``__main__``. The process first enqueues ``N`` no-op jobs with the system's own producer API (not timed), then
runs one worker with one execution slot until the orchestrator, having read the result that the
job's :func:`bench.tick.tick` wrote, stops it. Every system runs the same job: a function (or
listener) whose body is ``tick()``. Logging is at WARNING for all, so no system writes a line per job.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.tick import tick
from oxide import Event

QUEUE = "bench"
OXIDE_QUEUES = ("bench-high", "bench-default", "bench-low")

# -- oxide ------------------------------------------------------------------------------------------


def oxide_app(url: str, visibility_timeout_secs: float, prefetch: int = 1) -> Any:
    """An App with one connection to ``url`` and the no-op listener registered."""
    from oxide import App, Mode
    from oxide.config import Config, ConnectionConfig, DatabaseConfig

    connection = ConnectionConfig(
        name="redis",
        driver="redis",
        url=url,
        block_timeout_secs=1.0,
        visibility_timeout_secs=visibility_timeout_secs,
        prefetch=prefetch,
    )
    config = Config(
        config_dir=Path("config"),
        root=Path(),
        default="redis",
        connections={"redis": connection},
        failed_driver="none",
        database=DatabaseConfig("sqlite", {}),
    )
    app = App(config=config)
    app.listen(Noop, NoopListener, Mode.queue("redis"))
    return app


@dataclass
class Noop(Event):
    event_name = "bench.noop"
    n: int


class NoopListener:
    def handle(self, event: Any) -> None:
        tick()


def noop_job(n: int) -> Any:
    """The job the producers push: what ``dispatch(Noop(n=...))`` would push, uuid included."""
    import uuid

    from oxide.wire import Job

    return Job("bench.noop", f"{NoopListener.__module__}.{NoopListener.__qualname__}", {"n": n}, uuid=str(uuid.uuid4()))


def run_oxide(args: argparse.Namespace) -> None:
    from oxide.worker import Worker, WorkerOptions

    app = oxide_app(args.url, args.visibility, args.prefetch)
    if args.depth:
        # Growth: the jobs measured are the first n of a queue args.depth deep (pushed raw, not timed).
        body = noop_job(0).to_json()
        client = app.driver("redis").client
        for start in range(0, args.depth, 10_000):
            client.lpush("oxide:queue:bench-low", *[body] * min(10_000, args.depth - start))
    else:
        # Strict priority over three queues: a third of the jobs in each.
        for index, queue in enumerate(OXIDE_QUEUES):
            share = args.n // 3 + (1 if index < args.n % 3 else 0)
            app.push_many("redis", queue, [noop_job(i) for i in range(share)])
    worker = Worker(app, "redis", OXIDE_QUEUES, WorkerOptions(handle_signals=True, concurrency=args.concurrency))
    worker.run()


# -- peers ------------------------------------------------------------------------------------------


def noop() -> None:
    tick()


async def arq_noop(ctx: dict[str, Any]) -> None:
    tick()


def run_rq(args: argparse.Namespace, *, forking: bool) -> None:
    from redis import Redis
    from rq import Queue, SimpleWorker, Worker

    connection = Redis.from_url(args.url)
    queue = Queue(QUEUE, connection=connection)
    with connection.pipeline() as pipe:
        for _ in range(args.n):
            queue.enqueue(noop, pipeline=pipe)
        pipe.execute()
    worker_cls = Worker if forking else SimpleWorker
    worker_cls([queue], connection=connection).work(logging_level="WARNING")


def run_dramatiq(args: argparse.Namespace) -> None:
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=args.url)
    dramatiq.set_broker(broker)
    actor = dramatiq.actor(noop, queue_name=QUEUE, max_retries=0)
    for _ in range(args.n):
        actor.send()
    worker = dramatiq.Worker(broker, worker_threads=1)
    worker.start()
    signal.pause()  # the orchestrator ends this process once the jobs have run


def run_huey(args: argparse.Namespace) -> None:
    from huey import RedisHuey

    huey = RedisHuey(QUEUE, url=args.url)
    task = huey.task()(noop)
    for _ in range(args.n):
        task()
    consumer = huey.create_consumer(workers=1, worker_type="thread")
    consumer.run()


def run_arq(args: argparse.Namespace) -> None:
    from arq import Worker, create_pool
    from arq.connections import RedisSettings

    settings = RedisSettings.from_dsn(args.url)

    async def enqueue() -> None:
        pool = await create_pool(settings)
        for _ in range(args.n):
            await pool.enqueue_job("arq_noop")
        await pool.aclose()

    asyncio.run(enqueue())
    arq_noop.__qualname__ = "arq_noop"
    # One slot (max_jobs=1). arq then starts one job per poll, and its default poll_delay of 0.5 s
    # would cap it near 2 jobs/s: polling every millisecond measures its execution path instead.
    worker = Worker(functions=[arq_noop], redis_settings=settings, max_jobs=1, poll_delay=0.001, handle_signals=True)
    worker.run()


def run_celery(args: argparse.Namespace) -> None:
    from celery import Celery

    app = Celery("bench", broker=args.url)
    app.conf.task_ignore_result = True
    app.conf.worker_hijack_root_logger = False
    task = app.task(name="bench.noop")(noop)
    for _ in range(args.n):
        task.delay()
    app.Worker(
        pool="solo", concurrency=1, loglevel="WARNING", without_heartbeat=True, without_mingle=True, without_gossip=True
    ).start()


RUNNERS = {
    "oxide": run_oxide,
    "rq-simple": lambda a: run_rq(a, forking=False),
    "rq-fork": lambda a: run_rq(a, forking=True),
    "dramatiq": run_dramatiq,
    "huey": run_huey,
    "arq": run_arq,
    "celery": run_celery,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.workers")
    parser.add_argument("system", choices=sorted(RUNNERS))
    parser.add_argument("url")
    parser.add_argument("n", type=int)
    parser.add_argument("--prefetch", type=int, default=1)
    parser.add_argument("--visibility", type=float, default=90.0)
    parser.add_argument("--depth", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    RUNNERS[args.system](args)


if __name__ == "__main__":
    main()
