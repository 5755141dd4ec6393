"""Events, listeners and how a listener is run: inline, or queued on a connection."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import threading
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Self

from .drivers import check_queue_name
from .errors import JobTimedOut, OxideError

__all__ = ["Event", "Listener", "Mode", "listener_type_of", "run_handler", "with_timeout"]


class Event:
    """Base class of events. Subclass as a dataclass and set ``event_name``.

    The payload on the wire is the dataclass's fields; override
    :meth:`to_payload` / :meth:`from_payload` for anything else.
    """

    event_name: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("event_name")
        if name is None:
            cls.event_name = f"{cls.__module__}.{cls.__qualname__}"
        elif not isinstance(name, str) or not name:
            raise TypeError(f"{cls.__qualname__}.event_name must be a non-empty string, got {name!r}")

    def to_payload(self) -> Any:
        """The event's data as JSON values: its dataclass fields by default."""
        if not dataclasses.is_dataclass(self):
            raise TypeError(f"{type(self).__qualname__} is not a dataclass: decorate it or override to_payload()")
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_payload(cls, payload: Any) -> Self:
        """Rebuild the event from its payload: keyword arguments of the dataclass by default."""
        if not isinstance(payload, dict):
            raise TypeError(f"{cls.__qualname__}.from_payload expects an object, got {type(payload).__name__}")
        return cls(**payload)


class Listener(Protocol):
    """Anything with ``handle(event)``; ``handle`` may be ``async def``. Raising means failure."""

    def handle(self, event: Any, /) -> Any:
        """Handle one event."""


def listener_type_of(listener: type | object) -> str:
    """The wire name of a listener: ``f"{cls.__module__}.{cls.__qualname__}"``."""
    cls = listener if isinstance(listener, type) else type(listener)
    return f"{cls.__module__}.{cls.__qualname__}"


@dataclass(frozen=True)
class Mode:
    """How a listener runs: inline (``Mode.sync()``) or queued (``Mode.queue(connection)``)."""

    queued: bool = False
    connection: str | None = None
    queue_name: str | None = None
    max_tries: int | None = None
    backoff_secs: float | None = None
    timeout_secs: float | None = None
    delay_secs: float | None = None

    @classmethod
    def sync(cls) -> Mode:
        """Run the listener inline, inside ``dispatch``."""
        return cls()

    @classmethod
    def queue(cls, connection: str | None = None) -> Mode:
        """Queue the listener on ``connection`` (``None``: the config's default connection)."""
        if connection is not None and (not isinstance(connection, str) or not connection):
            raise OxideError(f"Mode.queue: connection must be a non-empty string or None, got {connection!r}")
        return cls(queued=True, connection=connection)

    def _queued(self, what: str) -> None:
        if not self.queued:
            raise OxideError(f"Mode.{what}() applies to queued listeners: use Mode.queue(...).{what}(...)")

    def on_queue(self, name: str) -> Mode:
        """Send jobs to queue ``name`` instead of the connection's default queue."""
        self._queued("on_queue")
        return dataclasses.replace(self, queue_name=check_queue_name(name))

    def tries(self, n: int) -> Mode:
        """Run the job at most ``n`` times before it is recorded as failed."""
        self._queued("tries")
        if type(n) is not int or n < 1:
            raise OxideError(f"Mode.tries: expected a whole number >= 1, got {n!r}")
        return dataclasses.replace(self, max_tries=n)

    def backoff(self, seconds: float) -> Mode:
        """Wait ``seconds * 2**(attempt-1)`` (with jitter) before a retry."""
        self._queued("backoff")
        return dataclasses.replace(self, backoff_secs=_seconds("backoff", seconds))

    def timeout(self, seconds: float) -> Mode:
        """Abort the listener after ``seconds``; the attempt counts as failed."""
        self._queued("timeout")
        value = _seconds("timeout", seconds)
        if value == 0:
            raise OxideError("Mode.timeout: expected seconds > 0, got 0")
        return dataclasses.replace(self, timeout_secs=value)

    def delay(self, seconds: float) -> Mode:
        """Make each job available only ``seconds`` after it is dispatched."""
        self._queued("delay")
        return dataclasses.replace(self, delay_secs=_seconds("delay", seconds))


def _seconds(what: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise OxideError(f"Mode.{what}: expected a finite number of seconds >= 0, got {value!r}")
    return float(value)


class _LoopThread:
    """One event loop for the life of the process, used when the caller already runs a loop."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def run(self, awaitable: Awaitable[Any]) -> Any:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="oxide-listeners", daemon=True).start()
                self._loop = loop
        future = asyncio.run_coroutine_threadsafe(_await(awaitable), self._loop)
        return future.result()


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


_runner: asyncio.Runner | None = None
# One Runner runs one coroutine at a time: threads that dispatch at once (a threaded web server)
# take turns on it instead of failing with "This event loop is already running".
_runner_lock = threading.Lock()
_loop_thread = _LoopThread()


def run_handler(listener: Any, event: Any, timeout_secs: float | None = None) -> Any:
    """Call ``listener.handle(event)``; an ``async def handle`` runs on one long-lived event loop.

    ``timeout_secs`` applies to ``async def`` listeners here (they are cancelled
    and :class:`~oxide.errors.JobTimedOut` is raised); a plain listener's timeout
    is the worker's business (``oxide.supervision.soft_timeout``).
    """
    global _runner
    result = listener.handle(event)
    if result is None or not inspect.isawaitable(result):  # None: most plain listeners, said at once
        return result
    awaitable = result if timeout_secs is None else with_timeout(result, timeout_secs)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        with _runner_lock:
            if _runner is None:
                _runner = asyncio.Runner()
            return _runner.run(_await(awaitable))
    # Called from inside a running loop (an async application): we cannot block that loop's
    # thread on itself, so the coroutine runs on a dedicated loop thread.
    return _loop_thread.run(awaitable)


async def with_timeout(awaitable: Awaitable[Any], timeout_secs: float) -> Any:
    deadline = asyncio.timeout(timeout_secs)
    try:
        async with deadline:
            return await awaitable
    except TimeoutError:
        if not deadline.expired():
            raise  # the listener's own TimeoutError (an HTTP call of its own, say), not this deadline
        raise JobTimedOut(f"the listener ran longer than its {timeout_secs:g}s timeout") from None
