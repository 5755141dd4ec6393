"""How many times a job may run and how long it waits between runs.

A job's ``attempts`` field counts the runs that ended in an exception; the
driver's ``expirations`` counts the runs that never ended because the worker
died. Both use up tries, so a job that kills every worker holding it is
recorded as failed instead of looping forever.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from .events import Mode

__all__ = ["BACKOFF_MAX_SECS", "AttemptPolicy", "backoff_delay"]

# No retry waits longer than an hour, however many tries are allowed.
BACKOFF_MAX_SECS = 3600.0


def backoff_delay(
    backoff_secs: float,
    attempt: int,
    *,
    cap_secs: float = BACKOFF_MAX_SECS,
    uniform: Callable[[float, float], float] = random.uniform,
) -> float:
    """``backoff_secs * 2**(attempt-1)``, capped, times a jitter in [1, 1.25).

    The jitter spreads the retries of jobs that failed together (a database
    blip) so they do not all come back in the same instant; staying below 2 it
    keeps every delay longer than the one before until the cap.
    """
    if backoff_secs <= 0:
        return 0.0
    base = backoff_secs * 2 ** min(attempt - 1, 64)
    return float(min(cap_secs, base * uniform(1.0, 1.25)))


@dataclass(frozen=True)
class AttemptPolicy:
    """The tries, backoff and timeout that apply to one job."""

    tries: int = 1
    backoff_secs: float = 0.0
    timeout_secs: float | None = None

    def for_mode(self, mode: Mode) -> AttemptPolicy:
        """The listener's own settings override the worker's defaults."""
        return AttemptPolicy(
            tries=mode.max_tries if mode.max_tries is not None else self.tries,
            backoff_secs=mode.backoff_secs if mode.backoff_secs is not None else self.backoff_secs,
            timeout_secs=mode.timeout_secs if mode.timeout_secs is not None else self.timeout_secs,
        )
