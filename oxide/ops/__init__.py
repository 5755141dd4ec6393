"""The operator's view of a queue connection: sizes and latency, pause, restart, the worker registry, metrics.

Everything an operator asks of the backend goes through one small contract,
:class:`OpsBackend`, with one implementation per driver that keeps jobs:
:mod:`oxide.ops.redis_ops` (keys under ``oxide:queue:``) and
:mod:`oxide.ops.sql_ops` (tables created by ``vendor:publish queue`` + ``migrate``).
The ``sync`` driver runs jobs inline and keeps nothing, so it has no backend
here: :func:`ops_backend_for` says so. The CLI commands (``queue:monitor``,
``queue:pause`` ...), the metrics exporter and the dashboard read through it;
workers write through :class:`oxide.ops.presence.Presence`.
``docs/operations.md`` lists every key and table.

Times kept in the backend are the backend's own clock (Redis ``TIME``, the
database's clock), in milliseconds since the Unix epoch, so skewed worker clocks
move nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import OxideError

if TYPE_CHECKING:
    from ..config import Config

__all__ = [
    "BUCKETS_SECS",
    "OUTCOMES",
    "Control",
    "MetricDeltas",
    "Minute",
    "OpsBackend",
    "OpsUnsupported",
    "Pause",
    "QueueMetrics",
    "QueueStats",
    "WorkerRecord",
    "bucket_index",
    "ops_backend_for",
]

# What a finished run of a job came to: run to the end, failed for good, or queued again for another attempt.
OUTCOMES = ("done", "failed", "retried")
# Upper bounds of the run-time histogram, in seconds: from a cache write to an hour-long export.
BUCKETS_SECS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
)
# A worker record lives this long unless refreshed: a worker beats about once a second, so a few
# missed beats (a slow backend) keep it listed, and a killed worker is gone within this time.
WORKER_TTL_SECS = 15.0
# The dashboard's plot covers the last hour; per-minute figures are kept a little longer, then expire.
MINUTES_KEPT = 120


class OpsUnsupported(OxideError):
    """The connection's driver keeps no jobs (``sync``), so there is nothing to inspect or control."""


def bucket_index(duration_secs: float) -> int:
    """The histogram bucket of a run time: the first bound it does not exceed, or ``len(BUCKETS_SECS)`` (+Inf)."""
    for i, bound in enumerate(BUCKETS_SECS):
        if duration_secs <= bound:
            return i
    return len(BUCKETS_SECS)


@dataclass(frozen=True)
class Pause:
    """A paused queue: since when, and until when (``None``: until ``queue:resume``); ms, backend clock."""

    since_ms: int
    until_ms: int | None = None


@dataclass(frozen=True)
class QueueStats:
    """One queue's figures at one moment.

    ``oldest_age_secs``: how long the job at the front of the line (the next one taken) has been
    in the queue; ``None`` when nothing is ready or the age is not known (docs/operations.md says
    how each driver measures it). ``failed`` comes from the failed-job store (``None``: not stored).
    """

    connection: str
    queue: str
    ready: int
    reserved: int
    delayed: int
    oldest_age_secs: float | None
    paused: Pause | None = None
    failed: int | None = None

    @property
    def size(self) -> int:
        """Every job the queue holds: ready, in hand and delayed (what ``queue:monitor --max`` compares)."""
        return self.ready + self.reserved + self.delayed

    def to_dict(self) -> dict[str, Any]:
        """The figures as JSON-ready values (``queue:monitor --json``, the dashboard's ``state.json``)."""
        return {
            "connection": self.connection,
            "queue": self.queue,
            "ready": self.ready,
            "reserved": self.reserved,
            "delayed": self.delayed,
            "failed": self.failed,
            "size": self.size,
            "oldest_age_secs": self.oldest_age_secs,
            "paused": self.paused is not None,
            "paused_until_ms": self.paused.until_ms if self.paused else None,
        }


@dataclass(frozen=True)
class WorkerRecord:
    """One live worker, as it registers itself (``jobs``: the jobs in hand, dicts of queue/event/listener/uuid/since)."""

    id: str
    host: str
    pid: int
    connection: str
    queues: tuple[str, ...]
    started_at: float  # Unix time, seconds (the worker's clock: shown, never compared)
    done: int = 0
    failed: int = 0
    jobs: tuple[Mapping[str, Any], ...] = ()
    beat_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "connection": self.connection,
            "queues": list(self.queues),
            "started_at": self.started_at,
            "done": self.done,
            "failed": self.failed,
            "jobs": [dict(j) for j in self.jobs],
            "beat_at": self.beat_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkerRecord:
        return cls(
            id=str(data["id"]),
            host=str(data["host"]),
            pid=int(data["pid"]),
            connection=str(data["connection"]),
            queues=tuple(str(q) for q in data["queues"]),
            started_at=float(data["started_at"]),
            done=int(data.get("done", 0)),
            failed=int(data.get("failed", 0)),
            jobs=tuple(dict(j) for j in data.get("jobs", ())),
            beat_at=float(data.get("beat_at", 0.0)),
        )


@dataclass
class MetricDeltas:
    """What workers add to the backend's counters at a flush, keyed by (queue, listener).

    ``counts[(queue, listener)][outcome]``; ``buckets[(queue, listener)][i]`` (not cumulative,
    ``i`` from :func:`bucket_index`); ``seconds[(queue, listener)]`` the run times' sum.
    """

    counts: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    buckets: dict[tuple[str, str], dict[int, int]] = field(default_factory=dict)
    seconds: dict[tuple[str, str], float] = field(default_factory=dict)

    def add(self, queue: str, listener: str, outcome: str, duration_secs: float) -> None:
        key = (queue, listener)
        counts = self.counts.setdefault(key, {})
        counts[outcome] = counts.get(outcome, 0) + 1
        buckets = self.buckets.setdefault(key, {})
        index = bucket_index(duration_secs)
        buckets[index] = buckets.get(index, 0) + 1
        self.seconds[key] = self.seconds.get(key, 0.0) + duration_secs

    def merge(self, other: MetricDeltas) -> None:
        """Add ``other`` into this one (deltas a failed flush must not lose)."""
        for key, counts in other.counts.items():
            mine = self.counts.setdefault(key, {})
            for outcome, n in counts.items():
                mine[outcome] = mine.get(outcome, 0) + n
        for key, buckets in other.buckets.items():
            mine_b = self.buckets.setdefault(key, {})
            for index, n in buckets.items():
                mine_b[index] = mine_b.get(index, 0) + n
        for key, secs in other.seconds.items():
            self.seconds[key] = self.seconds.get(key, 0.0) + secs

    def __bool__(self) -> bool:
        return bool(self.counts)

    def per_queue(self) -> dict[str, dict[str, float]]:
        """The per-minute figures of this flush: for each queue, runs per outcome and the run seconds (``secs``)."""
        out: dict[str, dict[str, float]] = {}
        for (queue, _listener), counts in self.counts.items():
            figures = out.setdefault(queue, {})
            for outcome, n in counts.items():
                figures[outcome] = figures.get(outcome, 0) + n
        for (queue, _listener), secs in self.seconds.items():
            figures = out.setdefault(queue, {})
            figures["secs"] = figures.get("secs", 0.0) + secs
        return out


@dataclass(frozen=True)
class QueueMetrics:
    """The counters of one (queue, listener) since the backend first saw it: monotonic across worker restarts."""

    queue: str
    listener: str
    counts: Mapping[str, int]  # outcome -> runs
    buckets: tuple[int, ...]  # per bucket of BUCKETS_SECS, then +Inf; not cumulative
    seconds: float


@dataclass(frozen=True)
class Minute:
    """One minute of one queue: runs per outcome and their run seconds; ``minute`` is Unix time // 60."""

    queue: str
    minute: int
    done: int = 0
    failed: int = 0
    retried: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class Control:
    """What a worker must obey, as one beat read it: the paused queues and the restart signal's value."""

    paused: frozenset[str] = frozenset()
    restart_mark: str | None = None


class OpsBackend(Protocol):
    """Operator state of one queue connection, kept in its backend."""

    name: str

    def now_ms(self) -> int:
        """The backend's clock, ms since the Unix epoch."""

    def stats(self, queues: Sequence[str]) -> list[QueueStats]:
        """Ready, reserved and delayed counts, the front job's age and the pause of each queue (failed: None)."""

    def queues(self) -> list[str]:
        """The queues this backend holds anything for (jobs, pauses, counters), sorted."""

    def clear(self, queue: str) -> int:
        """Delete the jobs waiting in ``queue`` (ready and delayed; not those in hand); returns how many."""

    def pause(self, queue: str, duration_secs: float | None) -> Pause:
        """Pause ``queue`` for ``duration_secs`` (None: until resumed); returns the pause."""

    def resume(self, queue: str) -> bool:
        """Lift the pause of ``queue``; False if it was not paused."""

    def paused(self, queues: Sequence[str]) -> dict[str, Pause]:
        """The pauses in force among ``queues``."""

    def request_restart(self) -> str:
        """Tell every worker of the connection to finish its jobs and exit; returns the new restart mark."""

    def restart_mark(self) -> str | None:
        """The current restart mark: a worker that saw another one at its start must restart."""

    def beat(
        self, record: WorkerRecord, deltas: MetricDeltas, queues: Sequence[str], ttl_secs: float = WORKER_TTL_SECS
    ) -> Control:
        """Refresh a worker's record for ``ttl_secs``, add its metric deltas, read its control state (one round trip)."""

    def forget_worker(self, worker_id: str) -> None:
        """Remove a worker's record (it stopped)."""

    def workers(self) -> list[WorkerRecord]:
        """The live workers, oldest first."""

    def metrics(self) -> list[QueueMetrics]:
        """Every (queue, listener)'s counters and run-time histogram."""

    def minutes(self, queues: Sequence[str], last: int = 60) -> list[Minute]:
        """Per-minute figures of the ``last`` minutes (the current one included), oldest first."""

    def close(self) -> None:
        """Release connections; the backend may be used again afterwards (it reconnects)."""


_BACKENDS = {"redis": "oxide.ops.redis_ops:RedisOps", "database": "oxide.ops.sql_ops:DatabaseOps"}


def ops_backend_for(config: Config, connection: str | None = None, **options: Any) -> OpsBackend:
    """The operator backend of one queue connection (the default when None); its module is imported now."""
    conn = config.connection(connection)
    path = _BACKENDS.get(conn.driver)
    if path is None:
        raise OpsUnsupported(
            f"queue connection {conn.name!r} uses the {conn.driver} driver, which runs jobs inline and keeps "
            f"nothing to inspect or control; name a redis or database connection (defined: "
            f"{', '.join(sorted(n for n, c in config.connections.items() if c.driver in _BACKENDS)) or 'none'})"
        )
    module_name, _, class_name = path.partition(":")
    factory = getattr(importlib.import_module(module_name), class_name)
    backend: OpsBackend = factory(conn, **options)
    return backend
