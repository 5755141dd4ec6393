"""``oxide queue:work`` in-process: the options it builds for the worker, and what it says about a sync connection."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

import oxide.worker
from oxide.attempts import AttemptPolicy
from oxide.cli import main
from oxide.errors import OxideError
from oxide.worker import StopReason, WorkerOptions

QUEUE_TOML = """
default = "main"
[connections.main]
driver = "redis"
[connections.inline]
driver = "sync"
[failed]
driver = "none"
"""


class RecordingWorker:
    """Stands in for Worker: records how it was built and stops at once for ``reason``."""

    built: ClassVar[list[tuple[Any, str | None, list[str] | None, WorkerOptions]]] = []
    presences: ClassVar[list[Any]] = []
    reason = StopReason.QUEUE_EMPTY

    def __init__(
        self, app: Any, connection: str | None, queues: list[str] | None, options: WorkerOptions, **kwargs: Any
    ) -> None:
        RecordingWorker.built.append((app, connection, queues, options))
        RecordingWorker.presences.append(kwargs.get("presence"))
        self.connection = app.config.connection(connection)

    def run(self) -> StopReason:
        return RecordingWorker.reason


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "queue.toml").write_text(QUEUE_TOML)
    (tmp_path / "workapp.py").write_text("from oxide import App\napp = App()\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("QUEUE_CONNECTION", "OXIDE_APP", "OXIDE_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(oxide.worker, "Worker", RecordingWorker)
    monkeypatch.setattr(RecordingWorker, "built", [])
    monkeypatch.setattr(RecordingWorker, "presences", [])
    monkeypatch.delitem(sys.modules, "workapp", raising=False)
    return tmp_path


def test_every_option_reaches_the_worker(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--app", "workapp:app", "queue:work", "--connection", "main", "--queue", "high, low", "--once"]
    argv += ["--stop-when-empty", "--max-jobs", "5", "--max-time", "60.5", "--tries", "3", "--backoff", "1.5"]
    argv += ["--timeout", "30", "--prefetch", "4", "--concurrency", "8", "--stop-timeout", "25"]
    assert main(argv) == 0
    [(app, connection, queues, options)] = RecordingWorker.built
    assert (connection, queues) == ("main", ["high", "low"])
    assert options == WorkerOptions(
        once=True,
        stop_when_empty=True,
        max_jobs=5,
        max_time_secs=60.5,
        prefetch=4,
        concurrency=8,
        stop_timeout_secs=25.0,
        policy=AttemptPolicy(tries=3, backoff_secs=1.5, timeout_secs=30.0),
    )
    assert app is sys.modules["workapp"].app
    assert capsys.readouterr().err == ""


def test_without_options_the_worker_gets_the_defaults(project: Path) -> None:
    assert main(["--app", "workapp:app", "queue:work"]) == 0
    [(_, connection, queues, options)] = RecordingWorker.built
    assert (connection, queues) == (None, None)
    assert options == WorkerOptions()
    assert options.policy == AttemptPolicy(tries=1, backoff_secs=0.0, timeout_secs=None)


def test_zero_means_no_limit_and_the_policy_falls_back_to_one_try_and_no_backoff(project: Path) -> None:
    argv = ["--app", "workapp:app", "queue:work", "--max-jobs", "0", "--max-time", "0", "--tries", "0"]
    assert main([*argv, "--backoff", "0", "--timeout", "0", "--prefetch", "0", "--stop-timeout", "0"]) == 0
    [(_, _, _, options)] = RecordingWorker.built
    assert options == WorkerOptions()


def test_a_sync_connection_says_there_is_nothing_to_take_and_exits_0(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(RecordingWorker, "reason", StopReason.NOTHING_TO_CONSUME)
    assert main(["--app", "workapp:app", "queue:work", "--connection", "inline"]) == 0
    assert capsys.readouterr().err == (
        "oxide: connection 'inline' uses the sync driver, which runs listeners inline when events are dispatched: "
        "there is nothing for a worker to take. Name a redis connection with --connection, or set the default in "
        "config/queue.toml.\n"
    )


def test_the_app_is_closed_when_the_worker_stops_and_when_it_raises(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import oxide.app

    closed: list[bool] = []
    monkeypatch.setattr(oxide.app.App, "close", lambda self: closed.append(True))
    assert main(["--app", "workapp:app", "queue:work"]) == 0
    assert closed == [True]

    def broken(self: Any) -> StopReason:
        raise OxideError("redis is gone")

    monkeypatch.setattr(RecordingWorker, "run", broken)
    assert main(["--app", "workapp:app", "queue:work"]) == 1
    assert closed == [True, True]


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--max-jobs", "x", "a whole number >= 0"),
        ("--max-time", "x", "a number of seconds >= 0"),
        ("--tries", "x", "a whole number >= 0"),
        ("--backoff", "x", "a number of seconds >= 0"),
        ("--timeout", "x", "a number of seconds >= 0"),
        ("--prefetch", "x", "a whole number >= 0"),
        ("--concurrency", "x", "a whole number >= 0"),
        ("--concurrency", "0", "a whole number >= 1"),
        ("--processes", "0", "a whole number >= 1"),
        ("--processes", "-2", "a whole number >= 0"),
        ("--stop-timeout", "x", "a number of seconds >= 0"),
    ],
)
def test_a_bad_value_is_named_by_its_option(
    project: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, expected: str
) -> None:
    assert main(["--app", "workapp:app", "queue:work", option, value]) == 2
    assert capsys.readouterr().err == f"oxide: error: {option}: expected {expected}, got {value!r}\n"
    assert RecordingWorker.built == []


def test_without_an_application_the_worker_is_refused_with_the_way_to_name_it(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["queue:work"]) == 2
    assert capsys.readouterr().err == (
        "oxide: error: queue:work runs your application's listeners: pass --app MODULE:ATTR or set OXIDE_APP\n"
    )
    assert RecordingWorker.built == []


def test_processes_runs_a_pool_of_members_with_the_same_options(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import oxide.worker.pool

    pools: list[tuple[list[str], int]] = []

    class RecordingPool:
        def __init__(self, command: list[str], size: int, **options: Any) -> None:
            pools.append((command, size))

        def run(self) -> int:
            return 1

    monkeypatch.setattr(oxide.worker.pool, "Pool", RecordingPool)
    argv = ["--app", "workapp:app", "queue:work", "--processes", "3", "--concurrency", "4", "--queue", "a,b"]
    assert main(argv) == 1  # the pool's own exit status
    [(command, size)] = pools
    assert size == 3
    assert command[1:] == ["-m", "oxide", "--app", "workapp:app", "queue:work", "--queue=a,b", "--concurrency=4"]
    assert RecordingWorker.built == []  # the pool's process runs no worker of its own


def test_one_process_is_this_process_alone(project: Path) -> None:
    assert main(["--app", "workapp:app", "queue:work", "--processes", "1"]) == 0
    assert len(RecordingWorker.built) == 1
