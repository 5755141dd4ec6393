"""A worker's side of the operator view: its record in the registry, its metrics, and what it must obey.

One :class:`Presence` per worker process and connection. The worker calls:

- :meth:`Presence.started` once, before its first take (it registers and notes the restart mark);
- :meth:`Presence.beat` from its heartbeat thread, about once a second, with the jobs in hand:
  one round trip that refreshes the record (it expires after ``WORKER_TTL_SECS`` without a beat,
  so a killed worker drops out of ``queue:workers`` by itself), adds the metric deltas gathered
  since the last beat to the backend's counters, and reads the paused queues and the restart mark;
- :meth:`Presence.record` after each job, on the hot path: an increment in memory under a lock,
  no I/O, safe from any thread or an asyncio loop;
- :meth:`Presence.paused_queues` and :meth:`Presence.restart_requested` before each take: answered
  from what the last beat read, no round trip;
- :meth:`Presence.stopped` once, when it exits: a last flush, and the record removed.

Nothing here raises on a backend outage: a beat that cannot reach the backend keeps its deltas
for the next one and the control state it had, and says so in the log once per outage.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import OxideError
from . import OUTCOMES, WORKER_TTL_SECS, Control, MetricDeltas, OpsBackend, WorkerRecord, ops_backend_for

if TYPE_CHECKING:
    from ..app import App
    from ..config import Config

__all__ = ["InHand", "Presence"]

log = logging.getLogger("oxide.ops")


@dataclass(frozen=True)
class InHand:
    """One job a worker is running: where it came from, what it is, and since when (Unix time, seconds)."""

    queue: str
    event: str
    listener: str
    uuid: str | None
    since: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "event": self.event,
            "listener": self.listener,
            "uuid": self.uuid,
            "since": self.since,
        }


class Presence:
    """The registry record, metric deltas and control state of one worker on one connection.

    ``source`` is the :class:`~oxide.app.App` or :class:`~oxide.config.Config` the worker runs with;
    ``backend`` replaces the one built from it (tests pass one with a namespace or fake clock; source may then be None).
    """

    def __init__(
        self,
        source: App | Config | None,
        connection: str,
        queues: Sequence[str],
        *,
        backend: OpsBackend | None = None,
        host: str | None = None,
        pid: int | None = None,
        clock: Callable[[], float] = time.time,
        ttl_secs: float = WORKER_TTL_SECS,
    ) -> None:
        from ..config import Config

        if backend is None:
            if source is None:
                raise ValueError("Presence: give the App or Config the worker runs with, or a backend")
            backend = ops_backend_for(source if isinstance(source, Config) else source.config, connection)
        self.connection = connection
        self.queues = tuple(queues)
        self.backend: OpsBackend = backend
        self.host = host or socket.gethostname()
        self.pid = os.getpid() if pid is None else pid
        self.id = f"{self.host}:{self.pid}:{secrets.token_hex(4)}"
        self._clock = clock
        self.ttl_secs = ttl_secs
        self._started_at = clock()
        self._lock = threading.Lock()
        self._deltas = MetricDeltas()
        self._done = 0
        self._failed = 0
        self._control = Control()
        self._baseline: str | None = None
        self._baseline_known = False
        self._unreachable = False

    # -- the hot path ------------------------------------------------------------------------------

    def record(self, queue: str, listener: str, outcome: str, duration_secs: float) -> None:
        """Count one finished run: ``outcome`` is "done", "failed" (for good) or "retried"; no I/O."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome {outcome!r}: expected one of {', '.join(OUTCOMES)}")
        with self._lock:
            self._deltas.add(queue, listener, outcome, max(0.0, duration_secs))
            if outcome == "done":
                self._done += 1
            elif outcome == "failed":
                self._failed += 1

    def paused_queues(self) -> frozenset[str]:
        """The worker's queues paused as of the last beat: skip them in the next take."""
        return self._control.paused

    def restart_requested(self) -> bool:
        """Whether ``queue:restart`` ran since this worker started (as of the last beat): finish and exit 0."""
        return self._baseline_known and self._control.restart_mark != self._baseline

    # -- the heartbeat -----------------------------------------------------------------------------

    def started(self) -> Control:
        """Register, and note the restart mark in force now (a later one means: restart). Call once, first."""
        return self.beat(())

    def beat(self, jobs: Sequence[InHand] = ()) -> Control:
        """Refresh the record with ``jobs`` (the jobs in hand), flush metric deltas, read control state."""
        with self._lock:
            deltas, self._deltas = self._deltas, MetricDeltas()
            record = self._record(jobs)
        try:
            control = self.backend.beat(record, deltas, self.queues, self.ttl_secs)
        except OxideError as exc:
            with self._lock:
                deltas.merge(self._deltas)
                self._deltas = deltas
            if not self._unreachable:
                log.warning("worker %s: heartbeat could not reach connection %r: %s", self.id, self.connection, exc)
                self._unreachable = True
            return self._control
        if self._unreachable:
            log.info("worker %s: heartbeat reaches connection %r again", self.id, self.connection)
            self._unreachable = False
        if not self._baseline_known:
            self._baseline, self._baseline_known = control.restart_mark, True
        self._control = control
        return control

    def stopped(self) -> None:
        """The worker exits: flush what is left and remove its record. Never raises."""
        self.beat(())
        try:
            self.backend.forget_worker(self.id)
        except OxideError as exc:
            log.warning("worker %s: could not remove its record (it expires by itself): %s", self.id, exc)

    def close(self) -> None:
        """Release the backend's connections."""
        self.backend.close()

    def _record(self, jobs: Sequence[InHand]) -> WorkerRecord:
        return WorkerRecord(
            id=self.id,
            host=self.host,
            pid=self.pid,
            connection=self.connection,
            queues=self.queues,
            started_at=self._started_at,
            done=self._done,
            failed=self._failed,
            jobs=tuple(j.to_dict() for j in jobs),
            beat_at=self._clock(),
        )
