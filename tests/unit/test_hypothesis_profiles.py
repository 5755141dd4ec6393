"""The profile choice that keeps CI deterministic and lets a developer ask for a deep run."""

from __future__ import annotations

import pytest
from hypothesis import settings

from tests.hypothesis_profiles import selected_profile


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
