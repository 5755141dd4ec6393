"""The profile choice that keeps CI deterministic and lets a developer ask for a deep run."""

from __future__ import annotations

import pytest
from hypothesis import settings

from tests.hypothesis_profiles import DEEP_EXAMPLES, examples, selected_profile, steps


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "dev"),
        ({"CI": "true"}, "ci"),
        ({"CI": "TRUE"}, "ci"),
        ({"CI": "false"}, "dev"),
        ({"HYPOTHESIS_PROFILE": "deep"}, "deep"),
        ({"CI": "true", "HYPOTHESIS_PROFILE": "deep"}, "deep"),
    ],
)
def test_profile_selection(environ: dict[str, str], expected: str) -> None:
    assert selected_profile(environ) == expected


def test_ci_profile_cannot_flake() -> None:
    ci = settings.get_profile("ci")
    assert ci.derandomize is True
    assert ci.deadline is None


def test_deep_profile_runs_more_examples_than_dev() -> None:
    assert settings.get_profile("deep").max_examples > settings.get_profile("dev").max_examples


@pytest.mark.parametrize(("profile", "factor", "step_factor"), [("dev", 1, 1), ("ci", 1, 1), ("deep", 10, 3)])
def test_a_tests_own_example_and_step_counts_follow_the_profile(
    monkeypatch: pytest.MonkeyPatch, profile: str, factor: int, step_factor: int
) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("HYPOTHESIS_PROFILE", profile)
    assert examples(40) == 40 * factor
    assert steps(30) == 30 * step_factor
    # Deep means deeper than ci for every test: the profile's own default as well.
    assert settings.get_profile("deep").max_examples == DEEP_EXAMPLES * settings.get_profile("ci").max_examples
