"""How main() turns what a command raises into an exit status and one line on stderr."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator
from typing import Any

import pytest

import oxide.cli.failed
from oxide.cli import EXIT_FAILURE, EXIT_USAGE, Context, UsageError, main
from oxide.errors import ConfigError, OxideError, QueueNameError


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No OXIDE_APP from outside; the root logger main() configures is put back afterwards."""
    monkeypatch.delenv("OXIDE_APP", raising=False)
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    root.handlers[:] = handlers


def command_raising(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> list[Context]:
    """Make ``queue:flush`` raise ``exc``; returns the contexts it was called with."""
    seen: list[Context] = []

    def handler(ctx: Context, args: argparse.Namespace) -> int:
        seen.append(ctx)
        raise exc

    monkeypatch.setattr(oxide.cli.failed, "flush", handler)
    return seen


def test_no_command_prints_help_and_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == EXIT_USAGE == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: oxide")
    assert "queue:work" in err


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (ConfigError("config/queue.toml: bad"), EXIT_USAGE),
        (QueueNameError("bad queue name"), EXIT_USAGE),
        (UsageError("bad use"), EXIT_USAGE),
        (OxideError("the store is down"), EXIT_FAILURE),
    ],
)
def test_errors_map_to_a_status_and_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], exc: OxideError, status: int
) -> None:
    command_raising(monkeypatch, exc)
    assert main(["queue:flush"]) == status
    assert capsys.readouterr().err == f"oxide: error: {exc}\n"


def test_verbose_adds_the_traceback(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    command_raising(monkeypatch, OxideError("the store is down"))
    assert main(["-v", "queue:flush"]) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert err.endswith("oxide: error: the store is down\n")


def test_ctrl_c_exits_130_quietly(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    command_raising(monkeypatch, KeyboardInterrupt())
    assert main(["queue:flush"]) == 130
    assert capsys.readouterr().err == ""


def test_other_exceptions_are_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    command_raising(monkeypatch, RuntimeError("a bug"))
    with pytest.raises(RuntimeError, match="a bug"):
        main(["queue:flush"])


@pytest.mark.parametrize(("environ", "expected"), [("pkg.mod:app", "pkg.mod:app"), ("", None)])
def test_the_app_comes_from_oxide_app_when_not_given(
    monkeypatch: pytest.MonkeyPatch, environ: str, expected: Any
) -> None:
    monkeypatch.setenv("OXIDE_APP", environ)
    seen = command_raising(monkeypatch, OxideError("stop"))
    main(["queue:flush"])
    assert seen[0].app_spec == expected


def test_the_app_option_wins_over_oxide_app(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OXIDE_APP", "from.env:app")
    seen = command_raising(monkeypatch, OxideError("stop"))
    main(["--app", "given:app", "--config", "cfg", "-vv", "queue:flush"])
    assert (seen[0].app_spec, seen[0].config_dir, seen[0].verbose) == ("given:app", "cfg", 2)


@pytest.mark.parametrize(("flags", "level"), [([], logging.INFO), (["-v"], logging.INFO), (["-vv"], logging.DEBUG)])
def test_logging_goes_to_stderr_at_info_and_at_debug_from_two_v(
    monkeypatch: pytest.MonkeyPatch, flags: list[str], level: int
) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # as in a fresh process: basicConfig configures only a bare root
    command_raising(monkeypatch, OxideError("stop"))
    main([*flags, "queue:flush"])
    assert root.level == level
    [handler] = root.handlers
    assert handler.formatter is not None
    assert handler.formatter._fmt == "%(asctime)s %(levelname)s %(name)s: %(message)s"
