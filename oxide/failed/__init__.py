"""Failed jobs: the record of a job that could not run, and where such records go.

The worker hands every failure to a :class:`FailedJobProvider`. With
``[failed] driver = "database"`` that is the ``failed_jobs`` table in the
default DB connection (:mod:`oxide.failed.store`), behind a provider that parks
what the database refuses and moves it in later (:mod:`oxide.failed.parking`);
with ``"none"`` it is :class:`LogOnlyProvider`, which logs at error level and
keeps nothing. ``docs/failed-jobs.md`` tells the whole story.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["FailedJob", "FailedJobProvider", "LogOnlyProvider", "StoredFailedJob", "provider_for", "store_for"]

log = logging.getLogger("oxide.failed")


@dataclass(frozen=True)
class FailedJob:
    """One failure, as the worker reports it.

    ``payload`` is the event's JSON (the job's ``payload`` field, canonical form);
    for a message that could not be decoded it is the raw body, kept whole, and
    ``event_name``/``listener_type`` are empty strings.
    """

    uuid: str
    connection: str
    queue: str
    event_name: str
    listener_type: str
    payload: str
    exception: str
    failed_at: datetime


@dataclass(frozen=True)
class StoredFailedJob(FailedJob):
    """A failed job as read back from a store, with its row id."""

    id: int = 0


class FailedJobProvider(Protocol):
    """Where failed jobs are recorded; every method may raise OxideError when the store is unavailable."""

    def log(self, job: FailedJob) -> None:
        """Record a failure; idempotent on ``uuid`` (recording the same uuid twice keeps one row)."""

    def all(self) -> Sequence[StoredFailedJob]:
        """Every recorded failure, oldest first."""

    def find(self, ids: Sequence[int]) -> Sequence[StoredFailedJob]:
        """The records with these ids (missing ids are simply absent)."""

    def forget(self, job_id: int) -> bool:
        """Delete one record; False if there was none."""

    def flush(self) -> int:
        """Delete every record; returns how many were deleted."""

    def flush_parked(self) -> int:
        """Move records parked while the store was down into it; returns how many. Call when idle; never raises."""


class LogOnlyProvider:
    """``[failed] driver = "none"``: log the failure at error level, keep nothing."""

    def log(self, job: FailedJob) -> None:
        log.error(
            "failed job dropped (failed.driver = none): connection=%s queue=%s event=%s listener=%s uuid=%s\n%s",
            job.connection,
            job.queue,
            job.event_name,
            job.listener_type,
            job.uuid,
            job.exception,
        )

    def all(self) -> Sequence[StoredFailedJob]:
        return []

    def find(self, ids: Sequence[int]) -> Sequence[StoredFailedJob]:
        return []

    def forget(self, job_id: int) -> bool:
        return False

    def flush(self) -> int:
        return 0

    def flush_parked(self) -> int:
        return 0


def provider_for(config: Config, connection: str) -> FailedJobProvider:
    """The provider a worker on ``connection`` records failures with, from ``[failed] driver``.

    ``"database"``: the ``failed_jobs`` table of the default DB connection, behind a
    :class:`~oxide.failed.parking.ParkingProvider` that parks what the database
    refuses (in Redis for a redis connection, else in the spool file) and moves it
    in later. The DB driver is imported now: a missing one is a ConfigError at startup.
    """
    if config.failed_driver == "none":
        return LogOnlyProvider()
    from ..db import database_for
    from .parking import SPOOL_PATH, Parking, ParkingProvider, RedisParking, SpoolParking
    from .store import DatabaseFailedJobProvider

    store = DatabaseFailedJobProvider(database_for(config))
    conn = config.connection(connection)
    parkings: list[Parking] = []
    if conn.driver == "redis":
        from ..drivers.redis import connect

        parkings.append(RedisParking.of_connection(conn, connect(conn.url)))
    parkings.append(SpoolParking(config.root / SPOOL_PATH))
    return ParkingProvider(store, parkings)


def store_for(config: Config) -> FailedJobProvider:
    """What the CLI reads and edits: the ``failed_jobs`` table, or nothing with ``driver = "none"``."""
    if config.failed_driver == "none":
        return LogOnlyProvider()
    from ..db import database_for
    from .store import DatabaseFailedJobProvider

    return DatabaseFailedJobProvider(database_for(config))
