"""The I/O-bound job of every system measured, as each one's own command imports it.

Every job is the same: :func:`bench.tick.tick` (the clock, in append mode here: a line per job, so
that a command of several processes is timed as one), then 20 ms of waiting — ``time.sleep`` for a
thread, ``asyncio.sleep`` for a coroutine — which stands in for an HTTP call. The Redis URL comes
from ``BENCH_REDIS_URL``. Nothing here connects to Redis until a job is sent or a worker starts.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any

from bench.tick import tick
from oxide import Event

SLEEP_SECS = 0.02
QUEUE = "bench"
# Set by the bench for the commands it starts; the bench's own process passes its URL explicitly.
URL = os.environ.get("BENCH_REDIS_URL", "")


def io_job() -> None:
    tick()
    time.sleep(SLEEP_SECS)


async def io_job_async(ctx: Any = None) -> None:
    tick()
    await asyncio.sleep(SLEEP_SECS)


# -- oxide: `python -m oxide --app bench.io_tasks:oxide_app queue:work ...` ------------------------


@dataclass
class IoWait(Event):
    event_name = "bench.io_wait"
    n: int


class IoWaitListener:
    def handle(self, event: IoWait) -> None:
        io_job()


class IoWaitAsyncListener:
    async def handle(self, event: IoWait) -> None:
        await io_job_async()


def oxide_app() -> Any:
    """The App the command runs: its config directory is the one the bench writes (``--config``)."""
    from oxide import App, Mode

    app = App()
    app.listen(IoWait, IoWaitListener, Mode.queue())
    app.listen(IoWait, IoWaitAsyncListener, Mode.queue())
    return app


# -- the peers ---------------------------------------------------------------------------------------


def dramatiq_actor(url: str) -> Any:
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    dramatiq.set_broker(RedisBroker(url=url))
    return dramatiq.actor(io_job, queue_name=QUEUE, max_retries=0)


def huey_app(url: str) -> Any:
    from huey import RedisHuey

    return RedisHuey(QUEUE, url=url)


def celery_app(url: str) -> Any:
    from celery import Celery

    app = Celery("bench", broker=url)
    app.conf.task_ignore_result = True
    app.conf.worker_hijack_root_logger = False
    app.conf.task_default_queue = QUEUE
    return app


# Module-level objects for the commands that import them by name: dramatiq imports the module and
# finds the broker it set; huey_consumer, celery -A and arq name an attribute. Only the system the
# command runs is set up (BENCH_SYSTEM), so that no command imports its peers.
SYSTEM = os.environ.get("BENCH_SYSTEM")
if SYSTEM == "dramatiq":
    dramatiq_io_job = dramatiq_actor(URL)
elif SYSTEM == "huey":
    huey = huey_app(URL)
    huey_io_job = huey.task()(io_job)
elif SYSTEM == "celery":
    celery = celery_app(URL)
    celery_io_job = celery.task(name="bench.io_job")(io_job)
elif SYSTEM == "arq":
    from arq.connections import RedisSettings

    class ArqSettings:
        """``arq bench.io_tasks.ArqSettings``: eight jobs at once (``max_jobs=8``)."""

        functions = [io_job_async]  # noqa: RUF012 -- arq reads these class attributes
        redis_settings = RedisSettings.from_dsn(URL)
        max_jobs = 8
        # arq starts new jobs once per poll; its default poll_delay of 0.5 s would cap it far below
        # the others, so it polls every millisecond, as in the no-op figure.
        poll_delay = 0.001
