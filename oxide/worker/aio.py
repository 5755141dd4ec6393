"""Slots on an event loop: ``async def`` listeners of a worker with several slots.

Every such job is a task on one event loop, run by one thread of the worker
for as long as it has async jobs: a job waiting on I/O holds no thread. Its
timeout is ``asyncio.timeout`` (:func:`oxide.events.with_timeout`); a worker
that gives up on it at a hard stop cancels the task. A listener that blocks the
loop (a plain ``time.sleep`` inside an ``async def``) holds every async job up;
the supervisor's stuck-job rule is the last resort for that.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from concurrent.futures import Future
from typing import Any

from ..events import with_timeout
from .outcomes import Abandoned, Running

__all__ = ["LoopSlots"]


class LoopSlots:
    """One event loop on a thread of its own, started with the first async job."""

    def __init__(self, completions: queue.SimpleQueue[Any]) -> None:
        self._completions = completions
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self, running: Running) -> None:
        """Run ``running``'s listener as a task; its outcome is put on the completions queue."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="oxide-async-slots", daemon=True)
            self._thread.start()
        running.handle = asyncio.run_coroutine_threadsafe(self._run(running), self._loop)

    async def _run(self, running: Running) -> None:
        self._completions.put((running, await _outcome(running)))

    @staticmethod
    def abandon(running: Running) -> None:
        """Cancel the task of a job the worker gives up on (its job has been given back)."""
        future = running.handle
        if isinstance(future, Future):
            future.cancel()

    def close(self) -> None:
        """Cancel what is left and stop the loop and its thread."""
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return

        def stop() -> None:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.call_soon(loop.stop)  # after the cancelled tasks have had their turn

        loop.call_soon_threadsafe(stop)
        thread.join(timeout=5)
        if not thread.is_alive():
            loop.close()


async def _outcome(running: Running) -> BaseException | None:
    """Await the listener; what it ended in (None: it returned)."""
    timeout = running.policy.timeout_secs
    try:
        result = running.registration.make_listener().handle(running.event)
        await (result if timeout is None else with_timeout(result, timeout))
    except asyncio.CancelledError as exc:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            return Abandoned()  # the worker gave up on it
        # The listener's own cancellation (of a task it awaited, say): a failure like any other,
        # not the BaseException that would stop the worker.
        failure = RuntimeError("the listener raised asyncio.CancelledError")
        failure.__cause__ = exc
        return failure
    except BaseException as exc:
        return exc
    return None
