"""Backoff arithmetic and how a listener's settings override the worker's policy.

``uniform`` is injected, so each delay is exact: the tests pin the formula
(doubling from ``backoff_secs``, the cap, the jitter's bounds) rather than a range.
"""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oxide.attempts import BACKOFF_MAX_SECS, AttemptPolicy, backoff_delay
from oxide.events import Mode


class RecordingUniform:
    """A ``random.uniform`` stand-in returning ``factor`` and remembering its bounds."""

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self.calls: list[tuple[float, float]] = []

    def __call__(self, low: float, high: float) -> float:
        self.calls.append((low, high))
        return self.factor


def no_jitter_expected(low: float, high: float) -> float:
    raise AssertionError("a zero backoff must not draw a jitter")


@pytest.mark.parametrize("backoff_secs", [0.0, -1.0, -0.001])
def test_no_backoff_means_no_wait_and_no_jitter(backoff_secs: float) -> None:
    assert backoff_delay(backoff_secs, 3, uniform=no_jitter_expected) == 0.0


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0)],
)
def test_delay_doubles_from_the_backoff_on_each_attempt(attempt: int, expected: float) -> None:
    # 0.5 s: a backoff under one second still waits, it is not rounded to nothing.
    assert backoff_delay(0.5, attempt, uniform=RecordingUniform(1.0)) == expected


def test_jitter_is_drawn_in_one_to_one_and_a_quarter_and_multiplies_the_delay() -> None:
    uniform = RecordingUniform(1.2)
    assert backoff_delay(10.0, 2, uniform=uniform) == pytest.approx(24.0)
    assert uniform.calls == [(1.0, 1.25)]


def test_delay_is_capped_by_default_at_an_hour() -> None:
    assert BACKOFF_MAX_SECS == 3600.0
    assert backoff_delay(10.0, 20, uniform=RecordingUniform(1.0)) == 3600.0
    assert backoff_delay(10.0, 20, cap_secs=60.0, uniform=RecordingUniform(1.0)) == 60.0


def test_below_the_cap_the_jittered_delay_is_returned_whole() -> None:
    assert backoff_delay(1.0, 1, cap_secs=100.0, uniform=RecordingUniform(1.25)) == 1.25


def test_the_exponent_stops_at_64_so_huge_attempt_counts_do_not_overflow() -> None:
    delay = backoff_delay(1.0, 10_000, cap_secs=math.inf, uniform=RecordingUniform(1.0))
    assert delay == 2.0**64
    assert isinstance(delay, float)


@given(
    backoff_secs=st.floats(min_value=0.001, max_value=600.0),
    attempt=st.integers(min_value=1, max_value=100),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_real_jitter_stays_within_a_quarter_above_the_capped_base(backoff_secs: float, attempt: int, seed: int) -> None:
    delay = backoff_delay(backoff_secs, attempt, uniform=random.Random(seed).uniform)
    base = backoff_secs * 2 ** min(attempt - 1, 64)
    assert min(BACKOFF_MAX_SECS, base) <= delay <= min(BACKOFF_MAX_SECS, base * 1.25)


POLICY = AttemptPolicy(tries=3, backoff_secs=2.0, timeout_secs=30.0)


def test_policy_defaults_are_one_try_no_backoff_no_timeout() -> None:
    assert AttemptPolicy() == AttemptPolicy(tries=1, backoff_secs=0.0, timeout_secs=None)


def test_a_listener_without_settings_keeps_the_worker_policy() -> None:
    assert POLICY.for_mode(Mode.queue()) == POLICY


def test_each_listener_setting_overrides_only_its_own_field() -> None:
    assert POLICY.for_mode(Mode(queued=True, max_tries=7)) == AttemptPolicy(7, 2.0, 30.0)
    assert POLICY.for_mode(Mode(queued=True, backoff_secs=5.0)) == AttemptPolicy(3, 5.0, 30.0)
    assert POLICY.for_mode(Mode(queued=True, timeout_secs=1.5)) == AttemptPolicy(3, 2.0, 1.5)


def test_falsy_listener_settings_still_override() -> None:
    # A listener that sets 0 means 0; only None falls back to the worker's value.
    mode = Mode(queued=True, max_tries=0, backoff_secs=0.0, timeout_secs=0.0)
    assert POLICY.for_mode(mode) == AttemptPolicy(tries=0, backoff_secs=0.0, timeout_secs=0.0)
