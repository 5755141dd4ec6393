"""Drivers for tests: an in-memory queue that behaves like the Redis one, and the registry of installed fakes.

:class:`MemoryDriver` keeps the Redis driver's rules, on a :class:`FakeClock`:
FIFO queues taken in priority order; a taken job is reserved until acknowledged
or released; a reservation that outlives the connection's visibility timeout
puts the job back at the front of its queue with its expirations counted; a
release without delay goes to the back of the line, one with a delay waits in
the delayed set. Whatever the worker sees of it, it would see of Redis.

A fake is *installed* on an :class:`~oxide.App` with :func:`install`, which
swaps it in with ``App.use_driver`` and remembers it, so that
:func:`oxide.testing.drain` finds every faked connection of an app.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self
from weakref import WeakKeyDictionary

from ..drivers import Delivery, Driver
from .clock import FakeClock

if TYPE_CHECKING:
    from ..app import App
    from ..attempts import AttemptPolicy
    from ..config import ConnectionConfig
    from .drain import FailedJobLog, WorkResult

__all__ = ["DrainableDriver", "InstalledFake", "MemoryDriver", "PushObserver", "install", "installed", "uninstall"]

PushObserver = Callable[[str, str, "float | None"], object]
"""Told of every job a producer adds: ``(queue, body, delay_secs)``; ``delay_secs`` is None for a plain push."""


class DrainableDriver(Driver, Protocol):
    """A driver on a fake clock that can say what it holds, so a drain can move time instead of waiting."""

    clock: FakeClock

    def queue_names(self) -> list[str]:
        """Every queue that has held a job, in the order each was first used."""

    def has_jobs(self, queues: Sequence[str]) -> bool:
        """Whether any of ``queues`` holds a job: ready, delayed, or reserved and not yet acknowledged."""

    def ready(self, queues: Sequence[str]) -> bool:
        """Whether a take from ``queues`` would find a job now."""

    def next_due(self, queues: Sequence[str]) -> float | None:
        """The clock time at which the next delayed job or expiring reservation of ``queues`` is due; None if none."""


@dataclass
class _Reservation:
    queue: str
    body: bytes
    deadline: float
    seq: int  # reservation order: expired ones return oldest first


class MemoryDriver:
    """Queues in memory with the Redis driver's rules; every job a producer adds is reported to ``on_push``."""

    consumable = True

    def __init__(self, config: ConnectionConfig, clock: FakeClock, on_push: PushObserver | None = None) -> None:
        self.name = config.name
        self.visibility_timeout_secs = config.visibility_timeout_secs
        self.clock = clock
        self._on_push = on_push
        self._ready: dict[str, deque[bytes]] = {}
        self._delayed: list[tuple[float, int, str, bytes]] = []  # heap of (due, seq, queue, body)
        self._reserved: dict[int, _Reservation] = {}
        self._expirations: dict[tuple[str, bytes], int] = {}
        self._seq = itertools.count(1)
        # The worker's supervisor thread extends reservations while the main thread runs the job.
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"MemoryDriver({self.name!r}, queues={self.queue_names()})"

    # -- producers -------------------------------------------------------------------------------

    def push(self, queue: str, body: str) -> None:
        self.push_many(queue, [body])

    def push_many(self, queue: str, bodies: Sequence[str]) -> None:
        with self._lock:
            for body in bodies:
                self._tell(queue, body, None)
                self._queue(queue).append(body.encode())

    def later(self, queue: str, bodies: Sequence[str], delay_secs: float) -> None:
        with self._lock:
            for body in bodies:
                self._tell(queue, body, delay_secs)
                self._add(queue, body.encode(), delay_secs)

    def _tell(self, queue: str, body: str, delay_secs: float | None) -> None:
        if self._on_push is not None:
            self._on_push(queue, body, delay_secs)

    # -- the worker's side -----------------------------------------------------------------------

    def pop(self, queues: Sequence[str], timeout_secs: float) -> Delivery | None:
        """Take the oldest ready job of the first non-empty queue; never waits (time moves only when told)."""
        with self._lock:
            self._promote(queues)
            for queue in queues:
                ready = self._ready.get(queue)
                if not ready:
                    continue
                body = ready.popleft()
                expirations = self._expirations.get((queue, body), 0)
                if self.visibility_timeout_secs <= 0:
                    # Reservations off: like BRPOP, the job is the taker's alone from now on.
                    return Delivery(queue=queue, body=body, expirations=expirations)
                seq = next(self._seq)
                deadline = self.clock() + self.visibility_timeout_secs
                self._reserved[seq] = _Reservation(queue, body, deadline, seq)
                return Delivery(queue=queue, body=body, receipt=seq, expirations=expirations)
            return None

    def ack(self, delivery: Delivery) -> bool:
        if delivery.receipt is None:
            return True
        with self._lock:
            held = self._reserved.pop(delivery.receipt, None)
            self._expirations.pop((delivery.queue, delivery.body), None)
            return held is not None

    def release(self, delivery: Delivery, body: str, delay_secs: float) -> bool:
        with self._lock:
            if delivery.receipt is not None:
                if self._reserved.pop(delivery.receipt, None) is None:
                    return False  # expired: the job is back in its queue already
                self._expirations.pop((delivery.queue, delivery.body), None)
            self._add(delivery.queue, body.encode(), delay_secs)
            return True

    def give_back(self, deliveries: Sequence[Delivery]) -> int:
        back = 0
        with self._lock:
            for delivery in reversed(deliveries):  # the first ends up at the very front
                if delivery.receipt is not None and self._reserved.pop(delivery.receipt, None) is None:
                    continue  # expired: back in its queue already
                self._queue(delivery.queue).appendleft(delivery.body)
                back += 1
        return back

    def extend(self, delivery: Delivery) -> bool:
        if delivery.receipt is None:
            return True
        with self._lock:
            held = self._reserved.get(delivery.receipt)
            if held is None:
                return False
            held.deadline = self.clock() + self.visibility_timeout_secs
            return True

    def size(self, queue: str) -> int:
        with self._lock:
            return len(self._ready.get(queue, ()))

    def close(self) -> None:
        pass

    # -- what a drain asks -----------------------------------------------------------------------

    def queue_names(self) -> list[str]:
        with self._lock:
            return list(self._ready)

    def has_jobs(self, queues: Sequence[str]) -> bool:
        wanted = set(queues)
        with self._lock:
            return (
                any(self._ready.get(q) for q in wanted)
                or any(item[2] in wanted for item in self._delayed)
                or any(r.queue in wanted for r in self._reserved.values())
            )

    def ready(self, queues: Sequence[str]) -> bool:
        with self._lock:
            self._promote(queues)
            return any(self._ready.get(q) for q in queues)

    def next_due(self, queues: Sequence[str]) -> float | None:
        wanted = set(queues)
        with self._lock:
            times = [due for due, _, queue, _ in self._delayed if queue in wanted]
            times += [r.deadline for r in self._reserved.values() if r.queue in wanted]
        return min(times, default=None)

    def jobs(self, queue: str) -> list[str]:
        """The bodies waiting in ``queue``, next to be taken first."""
        with self._lock:
            return [body.decode() for body in self._ready.get(queue, ())]

    # -- internals -------------------------------------------------------------------------------

    def _queue(self, queue: str) -> deque[bytes]:
        return self._ready.setdefault(queue, deque())

    def _add(self, queue: str, body: bytes, delay_secs: float) -> None:
        if delay_secs <= 0:
            self._queue(queue).append(body)
            return
        self._queue(queue)  # the queue exists from now on, so a drain knows its name
        heapq.heappush(self._delayed, (self.clock() + delay_secs, next(self._seq), queue, body))

    def _promote(self, queues: Sequence[str]) -> None:
        """As the reserve script does: due delayed jobs join the back, expired reservations the front."""
        now = self.clock()
        wanted = set(queues)
        kept: list[tuple[float, int, str, bytes]] = []
        while self._delayed and self._delayed[0][0] <= now:
            item = heapq.heappop(self._delayed)
            if item[2] in wanted:
                self._queue(item[2]).append(item[3])
            else:
                kept.append(item)
        for item in kept:
            heapq.heappush(self._delayed, item)
        expired = sorted(
            (r for r in self._reserved.values() if r.queue in wanted and r.deadline <= now), key=lambda r: r.seq
        )
        for reservation in reversed(expired):  # newest first, so the oldest ends up at the very front
            del self._reserved[reservation.seq]
            self._queue(reservation.queue).appendleft(reservation.body)
            key = (reservation.queue, reservation.body)
            self._expirations[key] = self._expirations.get(key, 0) + 1


# -- the registry of installed fakes ----------------------------------------------------------------


@dataclass
class _Installed:
    driver: DrainableDriver
    previous: Driver | None  # what to put back: the fake this one replaced (None: the configured driver)


_installed: WeakKeyDictionary[App, dict[str, list[_Installed]]] = WeakKeyDictionary()
_registry_lock = threading.Lock()


def install(app: App, connection: str, driver: DrainableDriver) -> None:
    """Make ``connection`` of ``app`` use ``driver`` until :func:`uninstall`; fakes may be stacked."""
    with _registry_lock:
        previous = app.use_driver(connection, driver)
        _installed.setdefault(app, {}).setdefault(connection, []).append(_Installed(driver, previous))


def uninstall(app: App, connection: str, driver: DrainableDriver) -> None:
    """Take ``driver`` out of ``connection``, putting back what it replaced; in any order, stacked fakes unwind right."""
    with _registry_lock:
        stack = _installed.get(app, {}).get(connection, [])
        index = next((i for i, entry in enumerate(stack) if entry.driver is driver), None)
        if index is None:
            return
        entry = stack.pop(index)
        if index < len(stack):
            # A fake installed later is still in place: it will put back what this one replaced.
            stack[index].previous = entry.previous
        else:
            app.use_driver(connection, entry.previous)


def installed(app: App) -> dict[str, DrainableDriver]:
    """The fake each connection of ``app`` uses now (the last installed), in the app's connection order."""
    with _registry_lock:
        stacks = _installed.get(app, {})
        return {name: stacks[name][-1].driver for name in app.config.connections if stacks.get(name)}


class InstalledFake:
    """What the queue fakes share: drivers installed on connections of ``app`` until :meth:`restore`."""

    app: App
    drivers: Mapping[str, DrainableDriver]
    active: bool

    def restore(self) -> None:
        """Give each connection its driver back; what the fake holds stays readable. Calling it twice is harmless."""
        if not self.active:
            return
        self.active = False
        for name, driver in reversed(list(self.drivers.items())):
            uninstall(self.app, name, driver)

    def drain(
        self,
        connection: str | None = None,
        queues: Sequence[str] | None = None,
        *,
        failed: FailedJobLog | None = None,
        policy: AttemptPolicy | None = None,
        max_jobs: int = 1000,
        seed: int = 0,
    ) -> WorkResult:
        """Run every job this fake holds through the real worker until none is left; see :func:`oxide.testing.drain`."""
        from .drain import drain_drivers

        if connection is not None and connection not in self.drivers:
            raise ValueError(
                f"connection {connection!r} is not faked by this {type(self).__name__}; it fakes {list(self.drivers)}"
            )
        drivers = {n: d for n, d in self.drivers.items() if connection is None or n == connection}
        return drain_drivers(self.app, drivers, queues, failed=failed, policy=policy, max_jobs=max_jobs, seed=seed)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.restore()
