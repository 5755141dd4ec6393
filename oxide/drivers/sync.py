"""The ``sync`` driver: runs the listener inline at push time, persists nothing."""

from __future__ import annotations

from collections.abc import Sequence

from ..config import ConnectionConfig
from . import Delivery, JobRunner

__all__ = ["SyncDriver"]


class SyncDriver:
    """Push runs the job at once; the listener's exception reaches the caller unchanged."""

    consumable = False

    def __init__(self, config: ConnectionConfig, runner: JobRunner) -> None:
        self.name = config.name
        self._run = runner

    def push(self, queue: str, body: str) -> None:
        self._run(queue, body)

    def push_many(self, queue: str, bodies: Sequence[str]) -> None:
        for body in bodies:
            self._run(queue, body)

    def later(self, queue: str, bodies: Sequence[str], delay_secs: float) -> None:
        # Nothing persists, so nothing can wait: like Laravel's sync queue, a delay is ignored.
        self.push_many(queue, bodies)

    def pop(self, queues: Sequence[str], timeout_secs: float) -> Delivery | None:
        return None

    def ack(self, delivery: Delivery) -> bool:
        return True

    def release(self, delivery: Delivery, body: str, delay_secs: float) -> bool:
        self._run(delivery.queue, body)
        return True

    def extend(self, delivery: Delivery) -> bool:
        return True

    def give_back(self, deliveries: Sequence[Delivery]) -> int:
        return 0  # nothing is ever taken from it

    def size(self, queue: str) -> int:
        return 0

    def close(self) -> None:
        pass
