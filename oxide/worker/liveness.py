"""What a worker shows its operators and obeys from them, beside its jobs.

- The registry, metrics and control state, through an :class:`oxide.ops.presence.Presence`
  (``queue:workers``, ``queue:metrics``, ``queue:pause``, ``queue:restart``): registered when the
  worker starts, one heartbeat about every second from the supervisor's thread (never from the
  take loop, so a beat costs the hot path nothing), removed when it stops. Pauses and the restart
  signal are read from what the last beat brought: a paused queue is left out of the takes within
  about a second, and a restart asked for is a stop like any other, ending in exit status 0.
- The health file (``--health-file``): touched from the take loop at most once a second, on
  every turn, whether a job came or not and while the worker waits to reconnect, so that a stale
  file means a loop that no longer turns: a listener stuck in the worker's own thread, or a hang.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..ops.presence import InHand, Presence

__all__ = ["BEAT_EVERY_SECS", "HEALTH_EVERY_SECS", "Liveness"]

log = logging.getLogger("oxide.worker")

BEAT_EVERY_SECS = 1.0
HEALTH_EVERY_SECS = 1.0


class Liveness:
    """The worker's registry record, pauses, restart signal and health file; each part optional."""

    def __init__(
        self,
        queues: Sequence[str],
        presence: Presence | None,
        health_file: Path | None,
        in_hand: Callable[[], list[InHand]],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.presence = presence
        self._queues = tuple(queues)
        self._health_file = health_file
        self._in_hand = in_hand
        self._clock = clock
        self._next_beat = 0.0
        self._next_touch = 0.0
        self._health_failed = False
        self._paused: frozenset[str] = frozenset()
        self._serving = self._queues  # the queues a take names: those not paused

    @property
    def beats(self) -> bool:
        """Whether a heartbeat thread is needed for this part alone."""
        return self.presence is not None

    def started(self) -> None:
        if self.presence is not None:
            self.presence.started()
            self._next_beat = self._clock() + BEAT_EVERY_SECS
        self.turn()

    def look(self) -> None:
        """The supervisor's thread, at every look: beat when one is due."""
        if self.presence is None or self._clock() < self._next_beat:
            return
        self._next_beat = self._clock() + BEAT_EVERY_SECS
        try:
            self.presence.beat(self._in_hand())
        except Exception as exc:  # the presence handles outages itself; anything else must not stop heartbeats
            log.warning("the worker's heartbeat to the registry failed: %s", exc)

    def turn(self) -> None:
        """The take loop, at every turn: touch the health file when it is due."""
        if self._health_file is None:
            return
        now = self._clock()
        if now < self._next_touch:
            return
        self._next_touch = now + HEALTH_EVERY_SECS
        try:
            os.utime(self._health_file)
        except FileNotFoundError:
            try:
                self._health_file.touch()
            except OSError as exc:
                self._health_unwritable(exc)
        except OSError as exc:
            self._health_unwritable(exc)
        else:
            self._health_failed = False

    def _health_unwritable(self, exc: OSError) -> None:
        if not self._health_failed:  # once per spell, not once a second
            log.error("cannot touch the health file %s: %s", self._health_file, exc)
            self._health_failed = True

    def serving(self) -> tuple[str, ...]:
        """The queues to take from now: the worker's, less the paused ones (as of the last beat)."""
        if self.presence is None:
            return self._queues
        paused = self.presence.paused_queues()
        if paused is not self._paused:  # a new answer comes with each beat: about once a second
            self._paused = paused
            serving = tuple(q for q in self._queues if q not in paused)
            if serving != self._serving:
                left_out = [q for q in self._queues if q in paused]
                log.info("paused queues left out of the takes: %s", ",".join(left_out) or "none")
                self._serving = serving
        return self._serving

    def restart_requested(self) -> bool:
        return self.presence is not None and self.presence.restart_requested()

    def stopped(self) -> None:
        if self.presence is not None:
            self.presence.stopped()
