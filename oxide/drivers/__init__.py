"""Queue drivers behind one small contract.

A driver moves job strings; it knows nothing of events or listeners. A new
driver is a module with a class that satisfies :class:`Driver` and one line in
:data:`FACTORIES` (plus its keys in ``config.DRIVER_KEYS``).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import QueueNameError

if TYPE_CHECKING:
    from ..config import ConnectionConfig

__all__ = ["BatchTaker", "Delivery", "Driver", "JobRunner", "check_queue_name", "delivered", "make_driver"]

_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


def check_queue_name(name: object) -> str:
    """Return ``name`` if it matches ``[A-Za-z0-9_.-]{1,128}``, else raise QueueNameError."""
    if not isinstance(name, str) or not 1 <= len(name) <= 128 or not _NAME_CHARS.issuperset(name):
        raise QueueNameError(
            f"invalid queue name {name!r}: use 1 to 128 characters from A-Z, a-z, 0-9, '_', '.' and '-'"
        )
    return name


def delay_ms(delay_secs: float) -> int:
    """A delay in whole milliseconds, rounded up: a job never becomes ready before its delay is over."""
    return max(0, math.ceil(delay_secs * 1000))


@dataclass(frozen=True, slots=True)
class Delivery:
    """A job taken from a queue and held for the taker until ``ack`` or ``release``.

    ``receipt`` is the driver's own handle on the reservation; ``expirations``
    counts how often this job was taken before by a worker that died holding it
    (those runs count as attempts, so a job that kills its worker cannot loop forever).
    """

    queue: str
    body: bytes
    receipt: Any = field(default=None, compare=False)  # a handle, not part of what was delivered
    expirations: int = 0


# A driver's hot path makes one Delivery per job taken: with its slots set directly, as the frozen
# dataclass's __init__ (one object.__setattr__ per field) took twice as long. The same object.
_set_queue, _set_body, _set_receipt, _set_expirations = (
    Delivery.__dict__[name].__set__ for name in ("queue", "body", "receipt", "expirations")
)


def delivered(queue: str, body: bytes, receipt: Any, expirations: int) -> Delivery:
    """``Delivery(queue, body, receipt, expirations)``, made faster (for a driver's take)."""
    delivery: Delivery = object.__new__(Delivery)
    _set_queue(delivery, queue)
    _set_body(delivery, body)
    _set_receipt(delivery, receipt)
    _set_expirations(delivery, expirations)
    return delivery


JobRunner = Callable[[str, str], None]
"""Runs one encoded job inline: ``(queue, body)``; used by drivers that do not persist."""


class Driver(Protocol):
    """A queue backend for one configured connection."""

    name: str
    consumable: bool  # False for drivers with nothing for a worker to take (sync)

    def push(self, queue: str, body: str) -> None:
        """Append one encoded job to the tail of ``queue``."""

    def push_many(self, queue: str, bodies: Sequence[str]) -> None:
        """Append several encoded jobs, in order, in as few round trips as the backend allows."""

    def later(self, queue: str, bodies: Sequence[str], delay_secs: float) -> None:
        """Add encoded jobs that become ready only after ``delay_secs``."""

    def pop(self, queues: Sequence[str], timeout_secs: float) -> Delivery | None:
        """Take (reserve) the oldest job of the first non-empty queue, waiting up to ``timeout_secs``."""

    def ack(self, delivery: Delivery) -> bool:
        """The job is finished (run, or recorded as failed); False if its reservation had already expired."""

    def release(self, delivery: Delivery, body: str, delay_secs: float) -> bool:
        """Queue ``body`` (the job, attempts raised) again after ``delay_secs``; False if the reservation expired."""

    def extend(self, delivery: Delivery) -> bool:
        """The job is still running: keep it reserved; False if the reservation had already expired."""

    def give_back(self, deliveries: Sequence[Delivery]) -> int:
        """Return taken jobs not finished to the front of their queues, in order, without counting an attempt.

        Returns how many went back; a job whose reservation had expired is back in its queue already.
        """

    def size(self, queue: str) -> int:
        """How many jobs wait in ``queue``."""

    def close(self) -> None:
        """Release connections; the driver may be used again afterwards."""


@runtime_checkable
class BatchTaker(Protocol):
    """Optional, for drivers that can acknowledge and take in one round trip, and take several jobs at once.

    The worker uses it when the driver has it, and :meth:`Driver.pop` / :meth:`Driver.ack` otherwise.
    """

    def take(
        self, queues: Sequence[str], timeout_secs: float, *, limit: int = 1, done: Sequence[Delivery] = ()
    ) -> tuple[list[bool], list[Delivery]]:
        """Acknowledge ``done``, then take up to ``limit`` jobs from the first non-empty queue (0: only acknowledge).

        Returns whether each job of ``done`` was still held (as ``ack``), and the jobs taken, oldest first.
        """
        ...


_FACTORIES: dict[str, str] = {
    "sync": "oxide.drivers.sync:SyncDriver",
    "redis": "oxide.drivers.redis:RedisDriver",
    "database": "oxide.drivers.database:DatabaseDriver",
}


def make_driver(config: ConnectionConfig, runner: JobRunner) -> Driver:
    """Build the driver for one connection; its module is imported only now."""
    module_name, _, class_name = _FACTORIES[config.driver].partition(":")
    factory = getattr(importlib.import_module(module_name), class_name)
    driver: Driver = factory(config, runner)
    return driver
