"""Global options of the command line: --config with --app, and argparse's own errors."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from oxide.cli import main

APP_MODULE = """
from oxide import App
app = App()
"""

PINNED_MODULE = """
from oxide import App
app = App({pinned!r})
"""

QUEUE_TOML = """
default = "mine"
[connections.mine]
driver = "sync"
[failed]
driver = "none"
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    # main() sets OXIDE_CONFIG_DIR for the app it imports; setenv first so the test's end restores it.
    monkeypatch.setenv("OXIDE_CONFIG_DIR", "")
    monkeypatch.delenv("OXIDE_CONFIG_DIR")
    monkeypatch.delenv("QUEUE_CONNECTION", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "queue.toml").write_text(QUEUE_TOML)
    yield tmp_path
    for name in ("cfgapp", "pinnedapp"):
        sys.modules.pop(name, None)


def test_config_reaches_an_app_built_at_import(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "cfgapp.py").write_text(APP_MODULE)
    # The sync connection 'mine' exists only in elsewhere/queue.toml: the worker names it if --config applied.
    status = main(["--app", "cfgapp:app", "--config", "elsewhere", "queue:work", "--once"])
    assert status == 0
    assert "connection 'mine' uses the sync driver" in capsys.readouterr().err


def test_config_that_the_app_cannot_follow_is_a_usage_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "pinned").mkdir()
    (project / "pinnedapp.py").write_text(PINNED_MODULE.format(pinned=str(project / "pinned")))
    status = main(["--app", "pinnedapp:app", "--config", "elsewhere", "queue:work", "--once"])
    err = capsys.readouterr().err
    assert status == 2
    assert "--config elsewhere: the application pinnedapp:app reads its configuration from" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["queue:work", "--bogus"], "unrecognized arguments: --bogus"),
        (["no-such-command"], "invalid choice: 'no-such-command'"),
    ],
)
def test_argparse_errors_are_one_line_with_status_2(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert fragment in err
    assert len(err.strip().splitlines()) == 1


# Not sqlite3: coverage, measuring the child process under CI, imports it for its own data file.
HEAVY = (
    "asyncio",
    "oxide.app",
    "oxide.events",
    "oxide.worker",
    "oxide.wire",
    "redis",
    "oxide.ops",
    "prometheus_client",
    "wsgiref",
)


def test_help_imports_nothing_heavy_so_the_cli_starts_fast() -> None:
    # A fresh interpreter: this one has imported everything already. The start-up time itself is a
    # benchmark figure (bench/); this pins what makes it small.
    import subprocess

    probe = (
        "import sys\n"
        "from oxide.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert "queue:work" in done.stdout
    assert done.stdout.splitlines()[-1] == ""


def test_the_package_still_offers_every_public_name_on_first_use() -> None:
    import oxide

    for name in oxide.__all__:
        assert getattr(oxide, name).__name__ == name
    assert set(oxide.__all__) <= set(dir(oxide))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = oxide.Nope  # type: ignore[attr-defined]
