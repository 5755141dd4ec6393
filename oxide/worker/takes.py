"""Taking jobs for free slots, and the acknowledgements that ride on the takes.

A driver that can acknowledge finished jobs in the same round trip as the next take (a
:class:`~oxide.drivers.BatchTaker`: the redis driver's ``take`` and ``reserve`` scripts) gets the worker's
acknowledgements deferred to that take, and may hand over several jobs per take: as many as there
are free slots, plus ``prefetch - 1`` more, which wait here until a slot frees (docs/performance.md).
Other drivers take one job per ``pop`` and are acknowledged at once.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence

from ..drivers import BatchTaker, Delivery, Driver
from ..errors import OxideError
from .options import WorkerOptions
from .outcomes import Outcomes, report_expired

__all__ = ["Takes"]

log = logging.getLogger("oxide.worker")


class Takes:
    """One worker's takes: the jobs held for later (prefetched), and the acknowledgements in wait."""

    def __init__(
        self,
        driver: Driver,
        queues: tuple[str, ...],
        options: WorkerOptions,
        outcomes: Outcomes,
        *,
        prefetch: int,
        visibility_timeout_secs: float,
        clock: Callable[[], float],
        sleep: Callable[[float], object],
    ) -> None:
        self._driver = driver
        self.queues = queues
        self._options = options
        self._outcomes = outcomes
        self.taker = driver if isinstance(driver, BatchTaker) else None
        self._prefetch = prefetch
        self._clock = clock
        self._sleep = sleep
        self.held: deque[tuple[Delivery, float]] = deque()  # taken, not started: (delivery, when taken)
        self._refresh_after_secs = visibility_timeout_secs / 3 if visibility_timeout_secs > 0 else None

    def take(self, queues: tuple[str, ...], free: int, wait_secs: float) -> list[Delivery]:
        """Jobs for ``free`` slots from ``queues``: taken alone (``pop``), or with the finished jobs'
        acknowledgements and up to prefetch - 1 more (those are kept in :attr:`held`)."""
        if not queues:  # every queue paused: wait as an empty take would, then look again
            self._sleep(wait_secs)
            return []
        if self.taker is None:
            delivery = self._driver.pop(queues, wait_secs)
            return [] if delivery is None else [delivery]
        limit = free + self._prefetch - 1
        options = self._options
        if options.once:
            limit = 1
        elif options.max_jobs is not None:
            limit = max(1, min(limit, options.max_jobs - self._outcomes.jobs_processed))
        outcomes = self._outcomes
        if len(queues) != len(self.queues) and any(d.queue not in queues for d in outcomes.done):
            self.send_acks()  # a take acknowledges jobs of the queues it names only: a paused one's first
        done, outcomes.done = outcomes.done, []
        try:
            held, taken = self.taker.take(queues, wait_secs, limit=limit, done=done)
        except BaseException:
            # The reply may be lost after the server acted: acknowledge again next time (a second
            # acknowledgement of the same job finds nothing and is reported as expired, harmlessly).
            outcomes.done[:0] = done
            raise
        if len(held) != len(done) or not all(held):
            _report_acks(done, held)
        if len(taken) <= free:
            return taken
        now = self._clock()
        self.held.extend((delivery, now) for delivery in taken[free:])
        return taken[:free]

    def next_held(self) -> Delivery | None:
        """The next prefetched job, its reservation refreshed if it has waited long; None if it expired meanwhile."""
        delivery, taken_at = self.held.popleft()
        if self._refresh_after_secs is None or self._clock() - taken_at < self._refresh_after_secs:
            return delivery
        try:
            still_held = self._driver.extend(delivery)
        except OxideError as exc:
            log.warning(
                "queue=%s could not extend a prefetched job's reservation (%s): running it", delivery.queue, exc
            )
            return delivery
        if still_held:
            return delivery
        log.warning(
            "queue=%s a prefetched job's reservation expired before it started: it is back in its queue, "
            "not run here (lower --prefetch, or raise visibility_timeout_secs)",
            delivery.queue,
        )
        return None

    def unstarted(self) -> list[Delivery]:
        """The prefetched jobs, no longer held here."""
        deliveries = [delivery for delivery, _taken_at in self.held]
        self.held.clear()
        return deliveries

    def give_back_unstarted(self) -> None:
        """Return the prefetched jobs to the front of their queues (raises if the driver cannot)."""
        unstarted = [delivery for delivery, _taken_at in self.held]
        if unstarted:
            back = self._driver.give_back(unstarted)
            self.held.clear()
            log.info("gave back %d prefetched job(s) not started, to the front of their queues", back)

    def acknowledge(self) -> None:
        """Send the acknowledgements in wait now, alone (raises if the server cannot be reached)."""
        if self.taker is None or not self._outcomes.done:
            return
        done, self._outcomes.done = self._outcomes.done, []
        try:
            held, _ = self.taker.take(self.queues, 0, limit=0, done=done)
        except BaseException:
            self._outcomes.done[:0] = done
            raise
        _report_acks(done, held)

    def send_acks(self) -> None:
        """:meth:`acknowledge`, with a failure logged: the jobs then run again after the visibility timeout."""
        waiting = len(self._outcomes.done)
        try:
            self.acknowledge()
        except Exception as exc:
            self._outcomes.done.clear()
            log.error(
                "could not acknowledge %d finished job(s) (%s): they return to their queues after the "
                "visibility timeout and run again",
                waiting,
                exc,
            )


def _report_acks(done: Sequence[Delivery], held: Sequence[bool]) -> None:
    for delivery, still_held in zip(done, held, strict=True):
        if not still_held:
            report_expired(delivery)
