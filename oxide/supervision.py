"""Watching the job in hand: reservation heartbeats, job timeouts, and the last resort.

One long-lived thread per worker, :class:`Supervisor`, looks at the job the
main thread is running (a plain attribute the main thread sets; nothing is
started per job, so the hot path pays nothing):

- every ``visibility_timeout / 3`` it extends the job's reservation, so a job
  that runs longer than the visibility timeout is never handed to a second
  worker while this one is alive;
- if the job overruns its timeout by a grace period — a listener stuck where
  the soft timeout below cannot reach it (a C call holding the GIL, a ``while
  True`` that swallows every exception) — it exits the process with
  :data:`EXIT_STUCK`. The job is still reserved, so it comes back to the queue
  after the visibility timeout with the lost run counted as an attempt; a
  process supervisor restarts the worker.

The soft timeout, :func:`soft_timeout`, interrupts a plain listener in the main
thread with ``SIGALRM``: the handler raises :class:`~oxide.errors.JobTimedOut`,
which (like ``KeyboardInterrupt``) derives from ``BaseException`` so that a
listener's ``except Exception`` cannot swallow it. An ``async def`` listener is
cancelled by ``asyncio.timeout`` instead (see :func:`oxide.events.run_handler`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType

from .drivers import Delivery, Driver
from .errors import JobTimedOut

__all__ = ["EXIT_STUCK", "Supervisor", "soft_timeout"]

log = logging.getLogger("oxide.worker")

# sysexits' EX_TEMPFAIL: "try again later" — the job comes back, the supervisor restarts us.
EXIT_STUCK = 75


def stuck_grace_secs(timeout_secs: float) -> float:
    """How long past its timeout a job may take to unwind before the process gives up on it."""
    return max(2.0, timeout_secs / 2)


@dataclass
class _Current:
    delivery: Delivery
    started: float
    timeout_secs: float | None


class Supervisor:
    """Heartbeats and the stuck-job exit for one worker's job in hand."""

    def __init__(
        self,
        driver: Driver,
        visibility_timeout_secs: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        exit_process: Callable[[int], object] = os._exit,
    ) -> None:
        self._driver = driver
        self._heartbeat_secs = visibility_timeout_secs / 3 if visibility_timeout_secs > 0 else None
        self._clock = clock
        self._exit = exit_process
        self._current: _Current | None = None
        self._last_beat = 0.0
        self._wake = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def watching(self, delivery: Delivery, timeout_secs: float | None) -> Iterator[None]:
        """Watch ``delivery`` while the block runs (heartbeats, and the stuck-job exit if timed)."""
        needed = self._heartbeat_secs is not None or timeout_secs is not None
        if needed and self._thread is None:
            self._stopped = False  # after close(): a worker run again is watched again
            self._wake.clear()
            self._thread = threading.Thread(target=self._loop, name="oxide-supervisor", daemon=True)
            self._thread.start()
        now = self._clock()
        self._last_beat = now
        self._current = _Current(delivery, now, timeout_secs)
        try:
            yield
        finally:
            self._current = None

    def close(self) -> None:
        """Stop the thread (the worker is done)."""
        self._stopped = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _tick_secs(self) -> float:
        return min(self._heartbeat_secs or 1.0, 1.0)

    def _loop(self) -> None:
        while not self._stopped:
            self._wake.wait(self._tick_secs())
            if self._stopped:
                return
            self.check()

    def check(self) -> None:
        """One look at the job in hand: beat if due, exit if stuck. Called by the thread; tests call it directly."""
        current = self._current
        if current is None:
            return
        now = self._clock()
        if current.timeout_secs is not None and now - current.started > current.timeout_secs + stuck_grace_secs(
            current.timeout_secs
        ):
            log.critical(
                "queue=%s job overran its %.1fs timeout by %.1fs and could not be interrupted: exiting with status %d; "
                "the job stays reserved and returns to the queue after the visibility timeout",
                current.delivery.queue,
                current.timeout_secs,
                now - current.started - current.timeout_secs,
                EXIT_STUCK,
            )
            logging.shutdown()
            sys.stderr.flush()
            self._exit(EXIT_STUCK)
            return
        if self._heartbeat_secs is not None and now - self._last_beat >= self._heartbeat_secs:
            self._last_beat = now
            try:
                held = self._driver.extend(current.delivery)
            except Exception as exc:  # the next beat tries again; the main thread sees outages itself
                log.warning("queue=%s could not extend the reservation: %s", current.delivery.queue, exc)
                return
            if not held and self._current is current:
                log.warning(
                    "queue=%s the reservation of the job in hand had expired before it was extended: "
                    "another worker may run it too (was this process paused?)",
                    current.delivery.queue,
                )


@contextlib.contextmanager
def soft_timeout(timeout_secs: float | None) -> Iterator[None]:
    """Raise :class:`JobTimedOut` in the main thread if the block runs longer than ``timeout_secs``."""
    if timeout_secs is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    armed = True

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        # Raise only while the listener runs: once the block is left, the worker's own I/O must not be cut.
        if armed:
            raise JobTimedOut(f"the listener ran longer than its {timeout_secs:g}s timeout")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    outer_delay, outer_interval = signal.setitimer(signal.ITIMER_REAL, timeout_secs)
    started = time.monotonic()
    try:
        yield
    finally:
        armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_delay > 0:
            # An alarm set outside (the application's own, a test runner's) is put back for what was
            # left of it: it rings late if it fell due during the block, but it is never lost.
            left = outer_delay - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-6), outer_interval)
