"""Watching the jobs in hand: reservation heartbeats, job timeouts, and the last resort.

One long-lived thread per worker, :class:`Supervisor`, looks at every job the
worker is running (however many slots it has; nothing is started per job, so
the hot path pays a dictionary insert and delete):

- every ``visibility_timeout / 3`` it extends each job's reservation, so a job
  that runs longer than the visibility timeout is never handed to a second
  worker while this one is alive;
- when a job on a slot thread reaches its timeout it calls the job's
  ``interrupt`` (the thread slots raise :class:`~oxide.errors.JobTimedOut` in
  that thread, see :mod:`oxide.worker.threads`);
- if a job overruns its timeout by a grace period — a listener stuck where no
  timeout can reach it (a C call holding the GIL, a ``while True`` that
  swallows every exception) — the process gives up on it: with ``on_stuck``
  set (a worker with several slots) the worker is told and stops on its own;
  without (one slot, the listener in the main thread) the process exits at
  once with :data:`EXIT_STUCK`. The stuck job stays reserved, so it comes back
  to the queue after the visibility timeout with the lost run counted as an
  attempt; a process supervisor restarts the worker.

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

__all__ = ["EXIT_STUCK", "Supervisor", "Watched", "soft_timeout"]

log = logging.getLogger("oxide.worker")

# sysexits' EX_TEMPFAIL: "try again later" — the job comes back, the supervisor restarts us.
EXIT_STUCK = 75
# The longest the thread sleeps between two looks, whatever the heartbeat asks for.
LOOK_EVERY_SECS = 1.0
_NEVER = float("inf")  # the interrupt deadline of a job without a timeout


def stuck_grace_secs(timeout_secs: float) -> float:
    """How long past its timeout a job may take to unwind before the process gives up on it."""
    return max(2.0, timeout_secs / 2)


@dataclass(eq=False, slots=True, init=False)
class Watched:
    """One job in hand, as the supervisor sees it (one is made per job: its __init__ is written out)."""

    delivery: Delivery
    started: float
    timeout_secs: float | None
    interrupt: Callable[[], object] | None  # called once when the timeout passes
    last_beat: float
    interrupted: bool
    stuck: bool
    deadline: float  # when interrupt is due; inf without a timeout

    def __init__(
        self,
        delivery: Delivery,
        started: float,
        timeout_secs: float | None,
        interrupt: Callable[[], object] | None = None,
    ) -> None:
        self.delivery = delivery
        self.started = self.last_beat = started
        self.timeout_secs = timeout_secs
        self.interrupt = interrupt
        self.interrupted = self.stuck = False
        self.deadline = _NEVER if timeout_secs is None else started + timeout_secs


class Supervisor:
    """Heartbeats, timeouts and the stuck-job exit for the jobs one worker has in hand."""

    def __init__(
        self,
        driver: Driver,
        visibility_timeout_secs: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        exit_process: Callable[[int], object] = os._exit,
        on_stuck: Callable[[Watched], object] | None = None,
    ) -> None:
        self._driver = driver
        self._heartbeat_secs = visibility_timeout_secs / 3 if visibility_timeout_secs > 0 else None
        self._clock = clock
        self._exit = exit_process
        self.on_stuck = on_stuck
        # Called at every look, from the thread (the worker's stop timeout with one slot); starts the thread too.
        self.on_look: Callable[[], object] | None = None
        self._watched: set[Watched] = set()  # a Watched hashes by identity (eq=False)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._next_look = float("inf")  # when the thread means to look next
        self._stopped = False
        self._thread: threading.Thread | None = None

    @property
    def exit_process(self) -> Callable[[int], object]:
        """What ends the process when a job is stuck (``os._exit``; tests record the call instead)."""
        return self._exit

    @property
    def watched(self) -> list[Watched]:
        """The jobs being watched now (a copy)."""
        with self._lock:
            return list(self._watched)

    def start(self) -> None:
        """Start the thread now, before any job (it looks even while nothing is in hand)."""
        if self._thread is None:
            self._start_thread()

    def watch(
        self, delivery: Delivery, timeout_secs: float | None, interrupt: Callable[[], object] | None = None
    ) -> Watched:
        """Start watching a job that starts now; hand the result to :meth:`unwatch` when it ends."""
        if self._thread is None and (
            self._heartbeat_secs is not None or timeout_secs is not None or self.on_look is not None
        ):
            self._start_thread()
        watched = Watched(delivery, self._clock(), timeout_secs, interrupt)
        # acquire() and release() rather than `with`: once per job, and a with statement costs twice as much.
        lock = self._lock
        lock.acquire()
        try:
            self._watched.add(watched)
        finally:
            lock.release()
        if interrupt is not None and watched.deadline < self._next_look:
            self._wake.set()  # the thread sleeps past this job's deadline: let it plan again
        return watched

    def unwatch(self, watched: Watched) -> None:
        """The job has ended: no more heartbeats, no timeout."""
        lock = self._lock
        lock.acquire()
        try:
            self._watched.discard(watched)
        finally:
            lock.release()

    @contextlib.contextmanager
    def watching(self, delivery: Delivery, timeout_secs: float | None) -> Iterator[Watched]:
        """Watch ``delivery`` while the block runs (heartbeats, and the stuck-job exit if timed)."""
        watched = self.watch(delivery, timeout_secs)
        try:
            yield watched
        finally:
            self.unwatch(watched)

    def close(self) -> None:
        """Stop the thread (the worker is done); a later watch starts it again."""
        self._stopped = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _start_thread(self) -> None:
        self._stopped = False  # after close(): a worker run again is watched again
        self._wake.clear()
        self._thread = threading.Thread(target=self._loop, name="oxide-supervisor", daemon=True)
        self._thread.start()

    def _tick_secs(self) -> float:
        return min(self._heartbeat_secs or LOOK_EVERY_SECS, LOOK_EVERY_SECS)

    def _loop(self) -> None:
        while not self._stopped:
            now = self._clock()
            due = [w.deadline for w in self.watched if w.interrupt is not None and not w.interrupted]
            self._next_look = min([now + self._tick_secs(), *due])
            self._wake.wait(max(self._next_look - now, 0.0))
            if self._stopped:
                return
            self._wake.clear()
            self.check()

    def check(self) -> None:
        """One look at every job in hand: beat if due, interrupt or give up if overdue. Tests call it directly."""
        for watched in self.watched:
            self._look(watched, self._clock())
        if self.on_look is not None:
            self.on_look()

    def _look(self, watched: Watched, now: float) -> None:
        timeout = watched.timeout_secs
        if timeout is not None and not watched.stuck and now - watched.started > timeout + stuck_grace_secs(timeout):
            watched.stuck = True
            self._give_up(watched, now)
            return
        if watched.interrupt is not None and not watched.interrupted and now >= watched.deadline:
            watched.interrupted = True
            watched.interrupt()
        if self._heartbeat_secs is not None and now - watched.last_beat >= self._heartbeat_secs:
            watched.last_beat = now
            try:
                held = self._driver.extend(watched.delivery)
            except Exception as exc:  # the next beat tries again; the main thread sees outages itself
                log.warning("queue=%s could not extend the reservation: %s", watched.delivery.queue, exc)
                return
            if not held and watched in self._watched:
                log.warning(
                    "queue=%s the reservation of the job in hand had expired before it was extended: "
                    "another worker may run it too (was this process paused?)",
                    watched.delivery.queue,
                )

    def _give_up(self, watched: Watched, now: float) -> None:
        assert watched.timeout_secs is not None
        overrun = now - watched.started - watched.timeout_secs
        if self.on_stuck is not None:
            log.critical(
                "queue=%s job overran its %.1fs timeout by %.1fs and could not be interrupted: the worker stops "
                "taking jobs and will exit with status %d; the job stays reserved and returns to the queue after "
                "the visibility timeout",
                watched.delivery.queue,
                watched.timeout_secs,
                overrun,
                EXIT_STUCK,
            )
            self.on_stuck(watched)
            return
        log.critical(
            "queue=%s job overran its %.1fs timeout by %.1fs and could not be interrupted: exiting with status %d; "
            "the job stays reserved and returns to the queue after the visibility timeout",
            watched.delivery.queue,
            watched.timeout_secs,
            overrun,
            EXIT_STUCK,
        )
        exit_now(self._exit)


def exit_now(exit_process: Callable[[int], object], status: int = EXIT_STUCK) -> None:
    """Flush the logs and end the process at once, whatever its threads are doing."""
    logging.shutdown()
    sys.stderr.flush()
    exit_process(status)


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
