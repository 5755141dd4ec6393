"""Slots on threads: plain (``def``) listeners of a worker with several slots.

The pool's threads only run listeners; taking, acknowledging and recording
outcomes stay in the worker's main thread, which hands a thread a job only
when a slot is free, so the pool never queues work of its own.

Interrupting a thread. ``SIGALRM`` reaches the main thread only, so a listener
on a pool thread is interrupted the way the alarm handler interrupts one in
the main thread: an exception is raised in the thread at its next Python
instruction (``PyThreadState_SetAsyncExc``), :class:`~oxide.errors.JobTimedOut`
at the job's timeout, :class:`~oxide.worker.outcomes.Abandoned` when a stopping
worker gives up on it. Neither can cut a C call short (a ``time.sleep``, a
socket read without a timeout): the exception lands when the call returns.
A job whose listener cannot be reached is left to the supervisor's stuck-job
rule. A :class:`SlotGuard` makes sure the exception is only ever raised while
the listener runs, never in the slot's own bookkeeping after it, and that a
listener that outran its timeout is reported as timed out even if it then
returned: a timed-out job is never reported as done.

An exception raised this way cannot be taken back: CPython's call to clear one
leaves the interpreter checking for it at every instruction of every thread,
for good. So one that was raised but had not landed when the listener ended is
given a place to land, inside the slot's ``try``, before the outcome is posted.
"""

from __future__ import annotations

import ctypes
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import JobTimedOut
from ..events import run_handler
from .outcomes import Abandoned, Running

__all__ = ["SlotGuard", "ThreadSlots"]

_WAITING, _RUNNING, _DONE = range(3)


class _SlotTimedOut(JobTimedOut):
    """What a timed-out thread raises; reported as a :class:`JobTimedOut` with its message."""


# How long a slot waits, at most, for an interruption on its way to land; it lands at the next
# Python instruction of the thread, so this only costs a listener that swallowed it.
LANDING_STEPS, LANDING_STEP_SECS = 20, 0.001


def _raise_in(thread_id: int, exc_type: type[BaseException]) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc_type))


class SlotGuard:
    """Raises an exception into the thread running one listener, only while the listener runs."""

    __slots__ = ("_lock", "_state", "_thread_id", "fired", "landed")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = _WAITING
        self._thread_id = 0
        self.fired: type[BaseException] | None = None
        self.landed = False  # the exception fired was seen by the slot

    def begin(self) -> None:
        """The calling thread starts the listener; raises at once if it was interrupted before it began."""
        with self._lock:
            self._thread_id = threading.get_ident()
            self._state = _RUNNING
            fired = self.fired
        if fired is not None:
            raise fired

    def end(self) -> None:
        """The listener has returned or raised: nothing more is raised into this thread after this."""
        with self._lock:
            self._state = _DONE

    def fire(self, exc_type: type[BaseException]) -> bool:
        """Interrupt the listener with ``exc_type`` (once); False if it had already ended or been interrupted."""
        with self._lock:
            if self._state == _DONE or self.fired is not None:
                return False
            self.fired = exc_type
            if self._state == _RUNNING:
                _raise_in(self._thread_id, exc_type)
            return True


def run_guarded(running: Running, guard: SlotGuard) -> BaseException | None:
    """Run a plain listener under ``guard``; what it ended in (None: it returned), timeouts made plain."""
    try:
        try:
            guard.begin()
            run_handler(running.registration.make_listener(), running.event)
        finally:
            guard.end()
    except BaseException as exc:
        if guard.fired is not None and isinstance(exc, guard.fired):
            guard.landed = True
        return _reported(running, guard, exc)
    if guard.fired is not None:
        return _reported(running, guard, None)
    return None


def _let_it_land() -> None:
    """Wait briefly for an interruption raised into this thread and not yet landed (it lands here)."""
    for _ in range(LANDING_STEPS):
        time.sleep(LANDING_STEP_SECS)


def _reported(running: Running, guard: SlotGuard, exc: BaseException | None) -> BaseException | None:
    """The outcome to record: an interruption wins over whatever the listener made of it."""
    if guard.fired is Abandoned:
        return Abandoned()
    if guard.fired is _SlotTimedOut:
        timed_out = JobTimedOut(f"the listener ran longer than its {running.policy.timeout_secs:g}s timeout")
        return timed_out.with_traceback(exc.__traceback__ if exc is not None else None)
    return exc


class ThreadSlots:
    """``size`` threads, started when the first plain listener comes, that run one listener each at a time."""

    def __init__(self, size: int, completions: queue.SimpleQueue[Any]) -> None:
        self._size = size
        self._completions = completions
        self._inbox: queue.SimpleQueue[Running | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def start(self, running: Running) -> Callable[[], object]:
        """Hand ``running`` to a free thread; returns what interrupts it at its timeout."""
        if not self._threads:
            for n in range(self._size):
                thread = threading.Thread(target=self._serve, name=f"oxide-slot-{n + 1}", daemon=True)
                thread.start()
                self._threads.append(thread)
        guard = SlotGuard()
        running.handle = guard
        self._inbox.put(running)
        return lambda: guard.fire(_SlotTimedOut)

    @staticmethod
    def abandon(running: Running) -> None:
        """Interrupt a listener the worker gives up on (its job has been given back)."""
        guard = running.handle
        if isinstance(guard, SlotGuard):
            guard.fire(Abandoned)

    def _serve(self) -> None:
        inbox, completions = self._inbox, self._completions
        while (running := inbox.get()) is not None:
            guard: SlotGuard = running.handle
            try:
                outcome = run_guarded(running, guard)
                if guard.fired is not None and not guard.landed:
                    _let_it_land()
            except (_SlotTimedOut, Abandoned):  # it landed after the listener, in the slot's own code
                guard.landed = True
                outcome = _reported(running, guard, None)
            completions.put((running, outcome))
            # Nothing of a finished job stays referenced from this thread while it waits for the next.
            running = outcome = None

    def close(self) -> None:
        """Let the threads end once their listeners return (a stuck one is a daemon: it does not hold the process)."""
        for _ in self._threads:
            self._inbox.put(None)
        self._threads = []
