"""The ``failed_jobs`` table behind the :class:`~oxide.failed.FailedJobProvider` contract."""

from __future__ import annotations

import uuid as uuid_module
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from ..db import Database, TableMissing
from . import FailedJob, StoredFailedJob

__all__ = ["COLUMNS", "TABLE", "DatabaseFailedJobProvider", "with_uuid"]

TABLE = "failed_jobs"
COLUMNS = ("uuid", "connection", "queue", "event_name", "listener_type", "payload", "exception", "failed_at")
T = TypeVar("T")
# Few enough placeholders per statement for every server (SQLite's old limit is 999).
_CHUNK = 500


def with_uuid(job: FailedJob) -> FailedJob:
    """``job``, given a fresh uuid if it has none: uuid is the unique key, so an empty one must never be shared."""
    if job.uuid:
        return job
    import dataclasses

    return dataclasses.replace(job, uuid=str(uuid_module.uuid4()))


class DatabaseFailedJobProvider:
    """Failed jobs as rows of ``failed_jobs`` in one :class:`~oxide.db.Database`."""

    def __init__(self, database: Database, table: str = TABLE) -> None:
        self.database = database
        self.table = table
        q = database.dialect.quote
        self._t = q(table)
        self._select = f"SELECT {q('id')}, {', '.join(q(c) for c in COLUMNS)} FROM {self._t}"
        self._insert = database.dialect.insert_ignoring_duplicate(table, COLUMNS, "uuid")
        self._id = q("id")

    def __repr__(self) -> str:
        return f"DatabaseFailedJobProvider({self.database.name}, table={self.table!r})"

    # -- the FailedJobProvider contract ------------------------------------------------------------

    def log(self, job: FailedJob) -> None:
        """Insert one row; a uuid already present keeps its row (so a re-delivered failure is one row)."""
        job = with_uuid(job)
        dialect = self.database.dialect
        text = dialect.text_param
        params = (
            *(text(v) for v in (job.uuid, job.connection, job.queue, job.event_name, job.listener_type)),
            text(job.payload),
            text(job.exception),
            dialect.timestamp_param(job.failed_at),
        )
        self._run(lambda: self.database.execute(self._insert, params))

    def all(self) -> Sequence[StoredFailedJob]:
        """Every row, oldest first."""
        return self._rows(f"{self._select} ORDER BY {self._id}")

    def find(self, ids: Sequence[int]) -> Sequence[StoredFailedJob]:
        """The rows with these ids, in id order; unknown ids are absent."""
        wanted = sorted({int(i) for i in ids})
        found: list[StoredFailedJob] = []
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            marks = ", ".join("?" for _ in chunk)
            found += self._rows(f"{self._select} WHERE {self._id} IN ({marks}) ORDER BY {self._id}", chunk)
        return found

    def forget(self, job_id: int) -> bool:
        """Delete one row; False if there was none."""
        deleted = self._run(lambda: self.database.execute(f"DELETE FROM {self._t} WHERE {self._id} = ?", (job_id,)))
        return deleted > 0

    def flush(self) -> int:
        """Delete every row; returns how many."""
        return self._run(lambda: self.database.execute(f"DELETE FROM {self._t}"))

    def flush_parked(self) -> int:
        """Nothing is parked by the bare table; :class:`~oxide.failed.parking.ParkingProvider` parks."""
        return 0

    # -- beyond the contract -----------------------------------------------------------------------

    def in_queue(self, queue: str) -> Sequence[StoredFailedJob]:
        """The rows that failed on ``queue`` (of any connection), oldest first."""
        q = self.database.dialect.quote
        return self._rows(f"{self._select} WHERE {q('queue')} = ? ORDER BY {self._id}", (queue,))

    def prune(self, before: datetime) -> int:
        """Delete the rows that failed before ``before``; returns how many."""
        q = self.database.dialect.quote
        sql = f"DELETE FROM {self._t} WHERE {q('failed_at')} < ?"
        moment = self.database.dialect.timestamp_param(before)
        return self._run(lambda: self.database.execute(sql, (moment,)))

    def count(self) -> int:
        """How many rows there are."""
        rows = self._run(lambda: self.database.query(f"SELECT COUNT(*) FROM {self._t}"))
        return int(rows[0][0])

    # -- internals ---------------------------------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[StoredFailedJob]:
        rows = self._run(lambda: self.database.query(sql, params))
        stamp = self.database.dialect.timestamp_value
        return [
            StoredFailedJob(
                id=int(row[0]),
                uuid=row[1],
                connection=row[2],
                queue=row[3],
                event_name=row[4],
                listener_type=row[5],
                payload=row[6],
                exception=row[7],
                failed_at=stamp(row[8]),
            )
            for row in rows
        ]

    def _run(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except TableMissing:
            raise TableMissing(
                f"table {self.table!r} does not exist in {self.database.name}; "
                "create it with: oxide vendor:publish queue && oxide migrate"
            ) from None
