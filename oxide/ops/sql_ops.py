"""Operator state of a ``database`` connection: the jobs table, and the tables of ``migrations/``.

Counts and the front job's age are read from the jobs table through its indexes
(``jobs_queue_line_position_index`` first); the age is the database clock minus the
``created_at`` of the job at the front of the line, the time it was first pushed.
Pauses, the restart mark, the worker registry and the metrics live in
``queue_control``, ``queue_workers``, ``queue_metrics`` and ``queue_minutes``, each row
scoped by the jobs table's name (``docs/operations.md``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from ..config import ConnectionConfig
from ..db import Database, Session, TableMissing
from . import (
    BUCKETS_SECS,
    MINUTES_KEPT,
    OUTCOMES,
    WORKER_TTL_SECS,
    Control,
    MetricDeltas,
    Minute,
    Pause,
    QueueMetrics,
    QueueStats,
    WorkerRecord,
)

__all__ = ["DatabaseOps"]

FIX = "create them with: oxide vendor:publish queue && oxide migrate"


class DatabaseOps:
    """:class:`~oxide.ops.OpsBackend` on one database connection."""

    def __init__(
        self,
        config: ConnectionConfig,
        *,
        database: Database | None = None,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        from ..drivers.database import open_database

        self.name = config.name
        self.config = config
        self.database = database if database is not None else open_database(config)
        self.scope = config.table
        self._clock_ms = clock_ms
        d = self.database.dialect
        q = d.quote
        self._q = q
        t, queue, pos = q(config.table), q("queue"), q("line_position")
        self._jobs = t
        self._count = {
            "ready": f"SELECT COUNT(*) FROM {t} WHERE {queue} = ? AND {pos} IS NOT NULL",
            "reserved": f"SELECT COUNT(*) FROM {t} WHERE {queue} = ? AND {q('reserved_until')} IS NOT NULL",
            "delayed": f"SELECT COUNT(*) FROM {t} WHERE {queue} = ? AND {q('available_at')} IS NOT NULL",
        }
        self._front = (
            f"SELECT {q('created_at')} FROM {t} WHERE {queue} = ? AND {pos} IS NOT NULL "
            f"ORDER BY {pos}, {q('id')} LIMIT 1"
        )
        self._control_upsert = d.upsert("queue_control", ("scope", "name"), ("value", "expires_at"))
        self._worker_upsert = d.upsert("queue_workers", ("scope", "id"), ("record", "started_at", "expires_at"))
        self._metric_add = d.upsert("queue_metrics", ("scope", "queue", "listener", "name"), ("value",), add=True)
        self._minute_add = d.upsert("queue_minutes", ("scope", "queue", "minute", "name"), ("value",), add=True)

    def __repr__(self) -> str:
        return f"DatabaseOps({self.name!r}, {self.database.name}, scope={self.scope!r})"

    @contextmanager
    def _session(self) -> Iterator[tuple[Session, int]]:
        """A transaction and the database's clock at its start."""
        try:
            with self.database.transaction() as session:
                if self._clock_ms is not None:
                    now = int(self._clock_ms())
                else:
                    now = int(session.query(self.database.dialect.epoch_ms_sql)[0][0])
                yield session, now
        except TableMissing as exc:
            raise TableMissing(f"queue connection {self.name!r}: a table is missing ({exc}); {FIX}") from None

    def now_ms(self) -> int:
        with self._session() as (_session, now):
            return now

    # -- queues ------------------------------------------------------------------------------------

    def stats(self, queues: Sequence[str]) -> list[QueueStats]:
        out = []
        with self._session() as (session, now):
            pauses = self._paused(session, now, queues)
            for queue in queues:
                counts = {state: int(session.query(sql, (queue,))[0][0]) for state, sql in self._count.items()}
                front = session.query(self._front, (queue,))
                age = max(0, now - int(front[0][0])) / 1000 if front else None
                out.append(
                    QueueStats(
                        self.name,
                        queue,
                        counts["ready"],
                        counts["reserved"],
                        counts["delayed"],
                        age,
                        pauses.get(queue),
                    )
                )
        return out

    def queues(self) -> list[str]:
        q = self._q
        found: set[str] = set()
        with self._session() as (session, _now):
            found.update(str(r[0]) for r in session.query(f"SELECT DISTINCT {q('queue')} FROM {self._jobs}"))
            found.update(
                str(r[0])
                for r in session.query(
                    f"SELECT DISTINCT {q('queue')} FROM {q('queue_metrics')} WHERE {q('scope')} = ?", (self.scope,)
                )
            )
            rows = session.query(
                f"SELECT {q('name')} FROM {q('queue_control')} WHERE {q('scope')} = ? AND {q('name')} LIKE 'pause:%'",
                (self.scope,),
            )
            found.update(str(r[0])[len("pause:") :] for r in rows)
        for worker in self.workers():  # the queues live workers serve, even while they are empty
            found.update(worker.queues)
        return sorted(found)

    def clear(self, queue: str) -> int:
        q = self._q
        with self._session() as (session, _now):
            return session.execute(
                f"DELETE FROM {self._jobs} WHERE {q('queue')} = ? AND {q('reserved_until')} IS NULL", (queue,)
            )

    # -- pause and restart -------------------------------------------------------------------------

    def pause(self, queue: str, duration_secs: float | None) -> Pause:
        with self._session() as (session, now):
            until = None if duration_secs is None else now + max(1, round(duration_secs * 1000))
            value = json.dumps({"since_ms": now, "until_ms": until})
            session.execute(self._control_upsert, (self.scope, f"pause:{queue}", value, until))
        return Pause(now, until)

    def resume(self, queue: str) -> bool:
        q = self._q
        with self._session() as (session, now):
            live = bool(self._paused(session, now, [queue]))
            session.execute(
                f"DELETE FROM {q('queue_control')} WHERE {q('scope')} = ? AND {q('name')} = ?",
                (self.scope, f"pause:{queue}"),
            )
        return live

    def paused(self, queues: Sequence[str]) -> dict[str, Pause]:
        with self._session() as (session, now):
            return self._paused(session, now, queues)

    def _paused(self, session: Session, now: int, queues: Sequence[str]) -> dict[str, Pause]:
        if not queues:
            return {}
        q = self._q
        names = [f"pause:{queue}" for queue in queues]
        marks = ", ".join("?" for _ in names)
        rows = session.query(
            f"SELECT {q('name')}, {q('value')} FROM {q('queue_control')} WHERE {q('scope')} = ? "
            f"AND {q('name')} IN ({marks}) AND ({q('expires_at')} IS NULL OR {q('expires_at')} > ?)",
            (self.scope, *names, now),
        )
        out = {}
        for name, value in rows:
            data = json.loads(value)
            until = data.get("until_ms")
            out[str(name)[len("pause:") :]] = Pause(int(data["since_ms"]), None if until is None else int(until))
        return out

    def request_restart(self) -> str:
        with self._session() as (session, now):
            session.execute(self._control_upsert, (self.scope, "restart", str(now), None))
        return str(now)

    def restart_mark(self) -> str | None:
        with self._session() as (session, _now):
            return self._restart_mark(session)

    def _restart_mark(self, session: Session) -> str | None:
        q = self._q
        rows = session.query(
            f"SELECT {q('value')} FROM {q('queue_control')} WHERE {q('scope')} = ? AND {q('name')} = 'restart'",
            (self.scope,),
        )
        return str(rows[0][0]) if rows else None

    # -- workers -----------------------------------------------------------------------------------

    def beat(
        self, record: WorkerRecord, deltas: MetricDeltas, queues: Sequence[str], ttl_secs: float = WORKER_TTL_SECS
    ) -> Control:
        q = self._q
        with self._session() as (session, now):
            expires = now + round(ttl_secs * 1000)
            session.execute(
                self._worker_upsert,
                (self.scope, record.id, json.dumps(record.to_dict()), round(record.started_at * 1000), expires),
            )
            session.execute(
                f"DELETE FROM {q('queue_workers')} WHERE {q('scope')} = ? AND {q('expires_at')} <= ?", (self.scope, now)
            )
            if deltas:
                self._add_metrics(session, now, deltas)
            paused = self._paused(session, now, queues)
            restart = self._restart_mark(session)
        return Control(frozenset(paused), restart)

    def _add_metrics(self, session: Session, now: int, deltas: MetricDeltas) -> None:
        q = self._q
        for (queue, listener), counts in deltas.counts.items():
            values: dict[str, float] = dict(counts)
            values.update({f"b{i}": n for i, n in deltas.buckets.get((queue, listener), {}).items()})
            values["secs"] = deltas.seconds.get((queue, listener), 0.0)
            for name, value in values.items():
                session.execute(self._metric_add, (self.scope, queue, listener, name, float(value)))
        minute = now // 60_000
        for queue, figures in deltas.per_queue().items():
            for name, value in figures.items():
                session.execute(self._minute_add, (self.scope, queue, minute, name, float(value)))
        session.execute(
            f"DELETE FROM {q('queue_minutes')} WHERE {q('scope')} = ? AND {q('minute')} < ?",
            (self.scope, minute - MINUTES_KEPT),
        )

    def forget_worker(self, worker_id: str) -> None:
        q = self._q
        with self._session() as (session, _now):
            session.execute(
                f"DELETE FROM {q('queue_workers')} WHERE {q('scope')} = ? AND {q('id')} = ?", (self.scope, worker_id)
            )

    def workers(self) -> list[WorkerRecord]:
        q = self._q
        with self._session() as (session, now):
            rows = session.query(
                f"SELECT {q('record')} FROM {q('queue_workers')} WHERE {q('scope')} = ? AND {q('expires_at')} > ? "
                f"ORDER BY {q('started_at')}, {q('id')}",
                (self.scope, now),
            )
        return [WorkerRecord.from_dict(json.loads(r[0])) for r in rows]

    # -- metrics -----------------------------------------------------------------------------------

    def metrics(self) -> list[QueueMetrics]:
        q = self._q
        with self._session() as (session, _now):
            rows = session.query(
                f"SELECT {q('queue')}, {q('listener')}, {q('name')}, {q('value')} FROM {q('queue_metrics')} "
                f"WHERE {q('scope')} = ? ORDER BY {q('queue')}, {q('listener')}",
                (self.scope,),
            )
        per: dict[tuple[str, str], dict[str, float]] = {}
        for queue, listener, name, value in rows:
            per.setdefault((str(queue), str(listener)), {})[str(name)] = float(value)
        return [
            QueueMetrics(
                queue=queue,
                listener=listener,
                counts={o: int(values.get(o, 0)) for o in OUTCOMES},
                buckets=tuple(int(values.get(f"b{i}", 0)) for i in range(len(BUCKETS_SECS) + 1)),
                seconds=values.get("secs", 0.0),
            )
            for (queue, listener), values in sorted(per.items())
        ]

    def minutes(self, queues: Sequence[str], last: int = 60) -> list[Minute]:
        if not queues:
            return []
        q = self._q
        marks = ", ".join("?" for _ in queues)
        with self._session() as (session, now):
            rows = session.query(
                f"SELECT {q('queue')}, {q('minute')}, {q('name')}, {q('value')} FROM {q('queue_minutes')} "
                f"WHERE {q('scope')} = ? AND {q('queue')} IN ({marks}) AND {q('minute')} > ?",
                (self.scope, *queues, now // 60_000 - last),
            )
        per: dict[tuple[int, str], dict[str, float]] = {}
        for queue, minute, name, value in rows:
            per.setdefault((int(minute), str(queue)), {})[str(name)] = float(value)
        return [
            Minute(
                queue=queue,
                minute=minute,
                done=int(v.get("done", 0)),
                failed=int(v.get("failed", 0)),
                retried=int(v.get("retried", 0)),
                seconds=v.get("secs", 0.0),
            )
            for (minute, queue), v in sorted(per.items())
        ]

    def close(self) -> None:
        self.database.close()
