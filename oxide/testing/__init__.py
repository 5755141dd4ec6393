"""Testing kit: fakes and assertions for applications that use oxide-queue, without Redis.

- :class:`QueueFake` (``fake_queue(app)``) records every job the app pushes
  instead of sending it, with ``assert_pushed``, ``assert_pushed_on``,
  ``assert_not_pushed`` and ``assert_nothing_pushed``.
- :class:`EventFake` (``fake_events(app)``) records dispatched events, with
  ``assert_dispatched``, ``assert_not_dispatched``, ``assert_nothing_dispatched``
  and ``assert_listening``.
- :func:`drain` runs what a fake holds through the real worker, in process, on
  a :class:`FakeClock`, and returns a :class:`WorkResult` (done, failed,
  retried per job). :class:`RedisFake` puts the redis connections on fakeredis
  to do the same through the real Redis driver.
- :func:`sqlite_failed_store` is a migrated ``failed_jobs`` table in a temporary SQLite file.

The pytest plugin (:mod:`oxide.testing.pytest_plugin`, loaded when the package
is installed) turns these into fixtures; ``docs/testing.md`` shows them in use.
"""

from __future__ import annotations

from .clock import FakeClock
from .drain import FailedJobLog, JobReport, Run, WorkResult, drain
from .drivers import DrainableDriver, MemoryDriver
from .event_fake import EventFake, fake_events
from .failed_store import sqlite_failed_store
from .queue_fake import PushedJob, QueueFake, fake_queue
from .redis_fake import FakeRedisDriver, RedisFake, fake_redis

__all__ = [
    "DrainableDriver",
    "EventFake",
    "FailedJobLog",
    "FakeClock",
    "FakeRedisDriver",
    "JobReport",
    "MemoryDriver",
    "PushedJob",
    "QueueFake",
    "RedisFake",
    "Run",
    "WorkResult",
    "drain",
    "fake_events",
    "fake_queue",
    "fake_redis",
    "sqlite_failed_store",
]
