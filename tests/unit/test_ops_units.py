"""The small pieces of the operator view: durations, targets, buckets, deltas, records, and the CLI's refusals."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from oxide.cli import main
from oxide.cli.ops import _age
from oxide.config import load_config
from oxide.errors import QueueNameError
from oxide.ops import BUCKETS_SECS, MetricDeltas, OpsUnsupported, WorkerRecord, bucket_index, ops_backend_for
from oxide.ops.views import parse_duration, split_targets


@pytest.mark.parametrize(
    ("text", "secs"), [("90", 90.0), ("90s", 90.0), ("15m", 900.0), ("2h", 7200.0), ("1d", 86400.0), ("0.5", 0.5)]
)
def test_durations(text: str, secs: float) -> None:
    assert parse_duration(text) == secs


@pytest.mark.parametrize("text", ["", "soon", "m", "0", "-5m", "inf"])
def test_bad_durations_name_the_text(text: str) -> None:
    with pytest.raises(ValueError, match=repr(text)):
        parse_duration(text)


def test_targets_default_their_connection_and_drop_repeats() -> None:
    assert split_targets("a, redis:b,,a", "db") == [("db", "a"), ("redis", "b")]
    with pytest.raises(QueueNameError, match="invalid queue name 'x y'"):
        split_targets("redis:x y", "db")


def test_buckets_are_the_first_bound_not_exceeded() -> None:
    assert bucket_index(0.0) == 0
    assert bucket_index(0.005) == 0
    assert bucket_index(0.0051) == 1
    assert bucket_index(3600.0) == len(BUCKETS_SECS) - 1
    assert bucket_index(3600.1) == len(BUCKETS_SECS)


def test_deltas_merge_and_sum_per_queue() -> None:
    a, b = MetricDeltas(), MetricDeltas()
    assert not a
    a.add("q", "L", "done", 1.0)
    b.add("q", "L", "done", 2.0)
    b.add("q", "M", "failed", 0.5)
    b.add("r", "L", "retried", 0.25)
    a.merge(b)
    assert a.counts == {("q", "L"): {"done": 2}, ("q", "M"): {"failed": 1}, ("r", "L"): {"retried": 1}}
    assert a.buckets[("q", "L")] == {bucket_index(1.0): 1, bucket_index(2.0): 1}
    assert a.per_queue() == {"q": {"done": 2, "failed": 1, "secs": 3.5}, "r": {"retried": 1, "secs": 0.25}}


def test_a_worker_record_survives_json() -> None:
    record = WorkerRecord("id", "h", 7, "c", ("a", "b"), 1.5, 2, 3, ({"queue": "a", "since": 1.0},), 9.0)
    assert WorkerRecord.from_dict(record.to_dict()) == record
    assert (
        WorkerRecord.from_dict(
            {"id": "i", "host": "h", "pid": 1, "connection": "c", "queues": [], "started_at": 0}
        ).done
        == 0
    )


def test_the_sync_driver_has_no_operator_backend() -> None:
    config = load_config(None, environ={})
    with pytest.raises(OpsUnsupported, match=r"'sync' uses the sync driver.*\(defined: redis\)"):
        ops_backend_for(config, "sync")


@pytest.mark.parametrize(("secs", "shown"), [(None, "-"), (5.2, "5s"), (119, "119s"), (600, "10m"), (9000, "2.5h")])
def test_ages_read_at_a_glance(secs: float | None, shown: str) -> None:
    assert _age(secs) == shown


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "queue.toml").write_text(
        'default = "db"\n[connections.db]\ndriver = "database"\n[connections.s]\ndriver = "sync"\n'
        '[failed]\ndriver = "none"\n'
    )
    (tmp_path / "config" / "database.toml").write_text(
        f'default = "main"\n[connections.main]\nurl = "sqlite:///{tmp_path / "db.sqlite"}"\n'
    )
    return tmp_path / "config"


def test_serving_commands_refuse_what_they_cannot_do(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        assert main(["--config", str(config_dir), "queue:dashboard", "--port", port]) == 2
        assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
        assert main(["--config", str(config_dir), "queue:metrics", "--port", port]) == 2
        assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
    assert main(["--config", str(config_dir), "queue:metrics", "--connection", "s"]) == 2
    assert "uses the sync driver" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # as if the extra were not installed
    assert main(["--config", str(config_dir), "queue:metrics"]) == 2
    assert "pip install 'oxide-queue[metrics]'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["queue:metrics", "--port", "70000"])
    assert "expected a port from 0 to 65535, got 70000" in capsys.readouterr().err


def test_restart_and_workers_say_when_there_is_nothing(config_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (config_dir / "queue.toml").write_text('default = "s"\n[connections.s]\ndriver = "sync"\n')
    assert main(["--config", str(config_dir), "queue:restart"]) == 0
    assert capsys.readouterr().out == "No redis or database connection in queue.toml: no worker to restart.\n"
    assert main(["--config", str(config_dir), "queue:restart", "--connection", "s"]) == 2
    assert main(["--config", str(config_dir), "queue:monitor", ","]) == 2
    assert "no queue named in ','" in capsys.readouterr().err
    assert main(["--config", str(config_dir), "queue:pause", "a,b"]) == 2
    assert "expected one queue" in capsys.readouterr().err
