"""A clock that moves only when told, so retries, backoff and reservations run without real waiting."""

from __future__ import annotations

__all__ = ["FakeClock"]


class FakeClock:
    """Seconds that stand still until advanced: pass ``clock`` and ``clock.sleep`` to a worker.

    ``sleep`` does not sleep: it records the wait and moves time on by it. The
    fake drivers read the same clock, so a delayed job becomes ready when the
    clock is moved past its due time, not after real seconds.
    """

    def __init__(self, start_secs: float = 1_000_000.0) -> None:
        self.now = float(start_secs)
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def __repr__(self) -> str:
        return f"FakeClock(now={self.now!r})"

    def ms(self) -> int:
        """The time in whole milliseconds (what the Redis scripts are given instead of the server's TIME)."""
        return round(self.now * 1000)

    def advance(self, secs: float) -> None:
        """Move time on by ``secs`` (>= 0)."""
        if not secs >= 0:
            raise ValueError(f"FakeClock.advance: expected seconds >= 0, got {secs!r}")
        self.now += secs

    def advance_to(self, moment: float) -> None:
        """Move time on to ``moment``; a moment already past changes nothing (time never goes back)."""
        self.now = max(self.now, float(moment))

    def sleep(self, secs: float) -> None:
        """Record the wait and move time on by it, at once."""
        self.slept.append(secs)
        self.advance(max(secs, 0.0))
