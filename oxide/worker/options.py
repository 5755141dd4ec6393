"""What a worker is told: when it stops on its own, how many jobs it runs at once, and why it stopped."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from ..attempts import AttemptPolicy
from ..errors import OxideError

__all__ = ["StopReason", "WorkerOptions"]


class StopReason(enum.Enum):
    """Why :meth:`Worker.run` returned."""

    INTERRUPTED = "interrupted"  # SIGINT/SIGTERM, or stop() called
    ONCE = "once"  # --once, and the one job has run
    MAX_JOBS = "max_jobs"  # --max-jobs reached
    MAX_TIME = "max_time"  # --max-time elapsed
    QUEUE_EMPTY = "queue_empty"  # --stop-when-empty found nothing; or --once waited block_timeout_secs for nothing
    NOTHING_TO_CONSUME = "nothing_to_consume"  # the connection's driver keeps no jobs (sync)
    STUCK = "stuck"  # a listener could not be interrupted past its timeout (the process exits 75)
    RESTART = "restart"  # queue:restart was run after this worker started


def _whole(name: str, value: object) -> None:
    if value is not None and (type(value) is not int or value < 1):
        raise OxideError(f"WorkerOptions.{name}: expected a whole number >= 1 or None, got {value!r}")


def _seconds(name: str, value: float | None) -> None:
    if value is not None and not 0 < value < float("inf"):
        raise OxideError(f"WorkerOptions.{name}: expected seconds > 0 or None, got {value!r}")


@dataclass(frozen=True)
class WorkerOptions:
    """When a worker stops on its own, how many jobs it runs at once, and how it waits to reconnect.

    ``None`` means no limit, or for ``prefetch``, ``concurrency`` and
    ``stop_timeout_secs`` the connection's setting.
    """

    once: bool = False
    stop_when_empty: bool = False
    max_jobs: int | None = None
    max_time_secs: float | None = None
    reconnect_initial_secs: float = 0.1
    reconnect_max_secs: float = 5.0
    handle_signals: bool = True  # install SIGINT/SIGTERM handlers (possible only in the main thread)
    # Jobs reserved per take beyond the free slots, plus one (--prefetch). See docs/performance.md.
    prefetch: int | None = None
    # Jobs in flight at once (--concurrency): plain listeners on threads, async ones on an event loop.
    concurrency: int | None = None
    # How long a stopping worker waits for its jobs in flight before it gives them back (--stop-timeout).
    stop_timeout_secs: float | None = None
    # Touched at every turn of the loop, at most once a second (--health-file): stale means stuck.
    health_file: Path | None = None
    # Defaults for listeners that set none of their own (Mode.queue(...).tries/backoff/timeout).
    policy: AttemptPolicy = field(default_factory=AttemptPolicy)

    def __post_init__(self) -> None:
        _whole("max_jobs", self.max_jobs)
        _whole("prefetch", self.prefetch)
        _whole("concurrency", self.concurrency)
        _seconds("max_time_secs", self.max_time_secs)
        _seconds("stop_timeout_secs", self.stop_timeout_secs)
        if not 0 < self.reconnect_initial_secs <= self.reconnect_max_secs:
            raise OxideError("WorkerOptions: expected 0 < reconnect_initial_secs <= reconnect_max_secs")
        policy = self.policy
        if type(policy.tries) is not int or policy.tries < 1:
            raise OxideError(f"WorkerOptions.policy.tries: expected a whole number >= 1, got {policy.tries!r}")
        if not 0 <= policy.backoff_secs < float("inf"):
            raise OxideError(f"WorkerOptions.policy.backoff_secs: expected seconds >= 0, got {policy.backoff_secs!r}")
        if policy.timeout_secs is not None and not 0 < policy.timeout_secs < float("inf"):
            raise OxideError(f"WorkerOptions.policy.timeout_secs: expected seconds > 0, got {policy.timeout_secs!r}")
