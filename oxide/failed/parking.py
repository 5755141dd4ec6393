"""Parking: where a failure waits, durably, while the ``failed_jobs`` table cannot be written.

The worker writes a failure before it removes the job from the backend. If the
database is down, locked, full or has no table, :class:`ParkingProvider` parks
the record and reports success, so the worker removes the job and goes on; the
record is moved into ``failed_jobs`` by a later ``log`` or by ``flush_parked()``.

- redis connections park in the Redis list ``oxide:queue:<queue>:failed`` (newest
  at the head, like the queues); a queue name holds no ``:``, so no queue collides.
- every connection can park in a JSON-lines spool file under the application
  directory, ``storage/oxide/failed-jobs.spool``; for a redis connection it is the
  fallback when Redis itself refuses.

Moving is copy-then-remove and ``log`` is idempotent on uuid, so a crash while
moving can repeat a write but never lose a record. Records are JSON with
``ensure_ascii``, so any Python string (even a lone surrogate) comes back unchanged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..drivers.keyspace import PLAIN, KeySpace
from ..errors import OxideError
from . import FailedJob, FailedJobProvider, StoredFailedJob
from .store import with_uuid

if TYPE_CHECKING:
    from ..config import ConnectionConfig

__all__ = [
    "PARKED_SUFFIX",
    "SPOOL_PATH",
    "Parking",
    "ParkingError",
    "ParkingProvider",
    "RedisParking",
    "SpoolParking",
    "decode_record",
    "encode_record",
]

log = logging.getLogger("oxide.failed")

PARKED_SUFFIX = ":failed"
SPOOL_PATH = Path("storage") / "oxide" / "failed-jobs.spool"


class ParkingError(OxideError):
    """A failure could be written neither to the store nor to any parking place."""


def encode_record(job: FailedJob) -> str:
    """One failure as a line of JSON."""
    fields = {
        "uuid": job.uuid,
        "connection": job.connection,
        "queue": job.queue,
        "event_name": job.event_name,
        "listener_type": job.listener_type,
        "payload": job.payload,
        "exception": job.exception,
        "failed_at": job.failed_at.isoformat(),
    }
    return json.dumps(fields, ensure_ascii=True, separators=(",", ":"))


def decode_record(text: str | bytes) -> FailedJob:
    """A failure from :func:`encode_record`'s form; ValueError if it is not one."""
    fields = json.loads(text)
    if not isinstance(fields, dict):
        raise ValueError("a parked record is a JSON object")
    fields["failed_at"] = datetime.fromisoformat(fields["failed_at"])
    return FailedJob(**fields)


class Parking(Protocol):
    """A durable place for failures that wait for the store."""

    where: str  # for log lines: where an operator finds the records

    def park(self, job: FailedJob) -> None:
        """Keep ``job`` durably; raises OxideError if this place cannot be written."""

    def drain(self, store: FailedJobProvider) -> int:
        """Move parked records into ``store``, oldest first; stops at the first store error (raised)."""

    def count(self) -> int:
        """How many records are parked here."""


class RedisParking:
    """Records in the Redis lists ``oxide:queue:<queue>:failed`` of one connection."""

    def __init__(self, client: Any, description: str = "redis", space: KeySpace = PLAIN) -> None:
        self.client = client
        self.space = space  # the connection's key names (drivers/keyspace.py): hash-tagged on a cluster
        self.where = f"{description} lists {space.base('<queue>')}:failed"

    @classmethod
    def of_connection(cls, conn: ConnectionConfig, client: Any) -> RedisParking:
        """The parked failures of redis connection ``conn``: its key names, its URL (redacted) in messages."""
        from ..drivers.keyspace import keyspace_of
        from ..drivers.redis import redact

        return cls(client, f"redis connection {conn.name!r} ({redact(conn.url)})", keyspace_of(conn.prefix, conn.url))

    def key(self, queue: str) -> str:
        """The list that holds ``queue``'s parked failures."""
        return self.space.base(queue) + PARKED_SUFFIX

    def keys(self) -> list[str]:
        """Every parked-failure list on this server."""
        found = []
        pattern = f"{self.space.prefix}*{PARKED_SUFFIX}"
        for raw in self._call(lambda: list(self.client.scan_iter(match=pattern, count=1000))):
            key = raw.decode() if isinstance(raw, bytes) else str(raw)
            parts = self.space.split(key)
            # Other structures (oxide:queue:q:x:failed) are not ours.
            if parts is not None and parts[0] and ":" not in parts[0] and parts[1] == PARKED_SUFFIX[1:]:
                found.append(key)
        return sorted(found)

    def park(self, job: FailedJob) -> None:
        record = encode_record(job)
        self._call(lambda: self.client.lpush(self.key(job.queue), record))

    def drain(self, store: FailedJobProvider) -> int:
        moved = 0
        for key in self.keys():
            while True:
                # Peek the oldest, store it, then remove exactly that value: two workers draining
                # together may both store it (one row, by uuid), but neither removes a record unstored.
                raw = self._call(lambda key=key: self.client.lindex(key, -1))
                if raw is None:
                    break
                try:
                    job = decode_record(raw)
                except (ValueError, TypeError, KeyError) as exc:
                    self._quarantine(key, raw, exc)
                    continue
                store.log(job)
                self._call(lambda key=key, raw=raw: self.client.lrem(key, -1, raw))
                moved += 1
        return moved

    def count(self) -> int:
        return sum(int(self._call(lambda key=key: self.client.llen(key))) for key in self.keys())

    def _quarantine(self, key: str, raw: Any, exc: Exception) -> None:
        # Unreadable (written by something else): set aside where an operator can look, not retried forever.
        bad_key = key + ":unreadable"
        log.error("parked record in %s is not readable (%s); moved to %s", key, exc, bad_key)
        self._call(lambda: self.client.lpush(bad_key, raw))
        self._call(lambda: self.client.lrem(key, -1, raw))

    def _call(self, call: Any) -> Any:
        import redis as redis_py

        try:
            return call()
        except redis_py.RedisError as exc:
            raise ParkingError(f"{self.where}: {exc}") from None


class SpoolParking:
    """Records as JSON lines in one file; appends are flushed to disk before ``park`` returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = f"spool file {path}"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # A lock file beside the spool (not the spool itself, which drain replaces): workers share it.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            try:
                import fcntl
            # pragma below: fcntl exists on every POSIX system, and the tests and CI run only there.
            except ImportError:  # pragma: no cover -- not POSIX: one worker per spool is then the operator's duty
                yield
                return
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def park(self, job: FailedJob) -> None:
        line = encode_record(job) + "\n"
        try:
            with self._locked(), open(self.path, "a", encoding="ascii") as spool:
                spool.write(line)
                spool.flush()
                os.fsync(spool.fileno())
        except OSError as exc:
            raise ParkingError(f"{self.where}: {exc}") from None

    def _lines(self) -> list[str]:
        try:
            # A byte a record cannot hold (records are ASCII) is an edit or damage: kept as a surrogate
            # escape, so the line reads without error and any rewrite puts back the bytes it had.
            return self.path.read_text(encoding="ascii", errors="surrogateescape").splitlines()
        except FileNotFoundError:
            return []

    def drain(self, store: FailedJobProvider) -> int:
        try:
            with self._locked():
                lines = [line for line in self._lines() if line.strip()]
                done = moved = 0
                try:
                    for line in lines:
                        try:
                            job = decode_record(line)
                        except (ValueError, TypeError, KeyError) as exc:
                            # A torn last line from a crash mid-append, or an edit: kept aside, not retried forever.
                            unreadable = self.path.with_name(self.path.name + ".unreadable")
                            with open(unreadable, "a", encoding="ascii", errors="surrogateescape") as bad:
                                bad.write(line + "\n")
                            log.error("unreadable line in %s (%s): moved to %s.unreadable", self.path, exc, self.path)
                        else:
                            store.log(job)
                            moved += 1
                        done += 1
                finally:
                    if done:
                        self._rewrite(lines[done:])
                return moved
        except OSError as exc:
            raise ParkingError(f"{self.where}: {exc}") from None

    def _rewrite(self, remaining: Sequence[str]) -> None:
        if not remaining:
            self.path.unlink(missing_ok=True)
            return
        temporary = self.path.with_name(self.path.name + ".tmp")
        with open(temporary, "w", encoding="ascii", errors="surrogateescape") as spool:
            spool.write("".join(line + "\n" for line in remaining))
            spool.flush()
            os.fsync(spool.fileno())
        temporary.replace(self.path)

    def count(self) -> int:
        with self._locked():
            return sum(1 for line in self._lines() if line.strip())


class ParkingProvider:
    """A store that never loses a failure: what the store refuses is parked and moved in later."""

    def __init__(self, store: FailedJobProvider, parkings: Sequence[Parking]) -> None:
        self.store = store
        self.parkings = list(parkings)
        # Whether anything may be parked: unknown at start (an earlier run may have parked), then True
        # only after this provider parks. It spares a Redis SCAN on every failure and every idle cycle.
        self._maybe_parked = True

    def log(self, job: FailedJob) -> None:
        """Write to the store; on a store error park the record (error logged) instead of raising.

        Raises ParkingError only when no parking place takes it either: the worker must then keep the job.
        """
        job = with_uuid(job)  # before parking, so moving it in later is idempotent too
        try:
            self.store.log(job)
        # Whatever made the store refuse (its errors are OxideError; anything else is a bug we must
        # not let cost the record), the record is parked and the error logged.
        except Exception as store_error:
            self._park(job, store_error)
            return
        self.flush_parked()  # the store answers again: bring in what waited

    def _park(self, job: FailedJob, store_error: Exception) -> None:
        problems = [str(store_error)]
        for parking in self.parkings:
            try:
                parking.park(job)
            except OxideError as exc:
                problems.append(str(exc))
                continue
            self._maybe_parked = True
            log.error(
                "could not write failed job uuid=%s (queue=%s event=%s) to failed_jobs: %s; "
                "parked in %s, moved to failed_jobs once the database answers",
                job.uuid,
                job.queue,
                job.event_name,
                store_error,
                parking.where,
            )
            return
        raise ParkingError(f"failed job uuid={job.uuid} could not be recorded anywhere: {'; '.join(problems)}")

    def flush_parked(self, *, force: bool = False) -> int:
        """Move parked records into the store; returns how many moved. Never raises: an error is logged.

        Cheap to call when idle: after one complete move it looks again only once this provider has
        parked something (``force`` looks regardless, for records parked by other processes).
        """
        if not (self._maybe_parked or force):
            return 0
        moved, complete = 0, True
        for parking in self.parkings:
            try:
                moved += parking.drain(self.store)
            except OxideError as exc:
                complete = False
                log.warning("parked failed jobs cannot be moved into failed_jobs yet: %s", exc)
        self._maybe_parked = not complete
        if moved:
            log.info("moved %d parked failed job(s) into failed_jobs", moved)
        return moved

    def parked_count(self) -> int:
        """How many records wait in the parking places (those that can be read now)."""
        total = 0
        for parking in self.parkings:
            with contextlib.suppress(OxideError):
                total += parking.count()
        return total

    def all(self) -> Sequence[StoredFailedJob]:
        return self.store.all()

    def find(self, ids: Sequence[int]) -> Sequence[StoredFailedJob]:
        return self.store.find(ids)

    def forget(self, job_id: int) -> bool:
        return self.store.forget(job_id)

    def flush(self) -> int:
        return self.store.flush()
