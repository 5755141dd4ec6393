"""Hypothesis settings profiles, registered when the test session starts.

- ``dev`` (the default): quick, for the edit-test loop.
- ``ci`` (chosen when ``CI=true``): derandomized and without deadlines, so a run
  never fails on a slow machine or on an example it has not seen before; the
  same examples every run, a few more than ``dev``.
- ``deep``: ten times the examples, and state machines three times as long,
  for a long hunt (``HYPOTHESIS_PROFILE=deep``; docs/testing-strength.md).

A test that sets its own number of examples (a state machine on a real server
is slow per example) writes ``examples(n)`` and ``steps(n)``: ``n`` under ``dev``
and ``ci``, scaled up under ``deep``, so the deep profile deepens every test.

``HYPOTHESIS_PROFILE`` names a profile explicitly and wins over ``CI``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# Stateful tests on a real server spend most of their time in round trips,
# which the too_slow health check would count against them.
_QUIET = [HealthCheck.too_slow]

settings.register_profile("dev", max_examples=50, deadline=None, suppress_health_check=_QUIET)
settings.register_profile(
    "ci",
    max_examples=100,
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=_QUIET,
)
settings.register_profile("deep", max_examples=1000, deadline=None, suppress_health_check=_QUIET)

# How much deeper the deep profile goes than ci: examples, and steps per state-machine run.
DEEP_EXAMPLES = 10
DEEP_STEPS = 3


def selected_profile(environ: dict[str, str] | None = None) -> str:
    """The profile this run uses: ``HYPOTHESIS_PROFILE``, else ``ci`` under ``CI=true``, else ``dev``."""
    env = dict(os.environ) if environ is None else environ
    if env.get("HYPOTHESIS_PROFILE"):
        return env["HYPOTHESIS_PROFILE"]
    return "ci" if env.get("CI", "").lower() == "true" else "dev"


def examples(n: int) -> int:
    """A test's own number of examples, ``n``, scaled for the selected profile."""
    return n * DEEP_EXAMPLES if selected_profile() == "deep" else n


def steps(n: int) -> int:
    """A state machine's own number of steps per run, ``n``, scaled for the selected profile."""
    return n * DEEP_STEPS if selected_profile() == "deep" else n


def load() -> None:
    """Load the selected profile."""
    settings.load_profile(selected_profile())
