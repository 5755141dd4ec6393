"""``oxide queue:work`` option checking, in-process: usage errors are one line and exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from oxide.cli import UsageError, main
from oxide.cli.work import parse_count, parse_queues, parse_seconds


def test_queue_list_keeps_priority_order() -> None:
    assert parse_queues("high,default,low") == ["high", "default", "low"]
    assert parse_queues(" high , low ") == ["high", "low"]
    assert parse_queues("emails") == ["emails"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("high,high", "'high' is listed twice"),
        ("high,,low", "empty queue name"),
        ("", "empty queue name"),
        ("a:b", "invalid queue name 'a:b'"),
        ("x" * 129, "invalid queue name"),
    ],
)
def test_bad_queue_lists_are_usage_errors(text: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        parse_queues(text)


@pytest.mark.parametrize(("text", "value"), [(None, None), ("0", None), ("1", 1), (" 25 ", 25)])
def test_counts(text: str | None, value: int | None) -> None:
    assert parse_count("--max-jobs", text) == value


@pytest.mark.parametrize("text", ["-1", "1.5", "ten", "", "1e3"])
def test_bad_counts(text: str) -> None:
    with pytest.raises(UsageError, match=r"--max-jobs: expected a whole number >= 0"):
        parse_count("--max-jobs", text)


@pytest.mark.parametrize(("text", "value"), [(None, None), ("0", None), ("2.5", 2.5), ("60", 60.0)])
def test_seconds(text: str | None, value: float | None) -> None:
    assert parse_seconds("--max-time", text) == value


@pytest.mark.parametrize("text", ["-1", "nan", "inf", "soon", ""])
def test_bad_seconds(text: str) -> None:
    with pytest.raises(UsageError, match=r"--max-time: expected a (finite )?number of seconds >= 0"):
        parse_seconds("--max-time", text)


@pytest.mark.parametrize(
    "argv",
    [
        ["queue:work", "--queue", "a,a"],
        ["queue:work", "--max-jobs", "x"],
        ["queue:work", "--max-time", "-3"],
        ["queue:work", "--prefetch", "many"],
        ["queue:work"],  # no --app: every job would fail for want of listeners
    ],
)
def test_usage_errors_exit_2_with_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OXIDE_APP", raising=False)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("oxide: error: ")


def test_verbose_usage_error_shows_the_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OXIDE_APP", raising=False)
    assert main(["-v", "queue:work", "--queue", "a,a"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.rstrip().endswith("oxide: error: --queue: 'a' is listed twice in 'a,a'")


def test_loading_the_command_imports_neither_the_worker_nor_redis() -> None:
    code = "import sys, oxide.cli.work; print(sorted(m for m in ('oxide.worker', 'redis') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
