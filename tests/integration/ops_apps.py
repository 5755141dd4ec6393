"""The operator tests' application: a directory of its own (config, migrated tables) on Redis or a database.

Redis queues carry the test's key prefix, and the connection-wide keys (restart mark, worker
registry) the test's namespace, so nothing reaches another test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import oxide.ops.redis_ops
from oxide import App
from oxide.cli import main
from oxide.ops import OpsBackend, ops_backend_for
from oxide.wire import Job
from tests.conftest import _scratch_mysql, _scratch_postgresql

__all__ = ["CliApp", "cli_app", "push", "write_config"]


@dataclass
class CliApp:
    root: Path
    kind: str
    prefix: str
    capsys: pytest.CaptureFixture[str]

    def run(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        status = main(["--config", str(self.root / "config"), *args])
        out, err = self.capsys.readouterr()
        return status, out, err

    def queue(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def app(self) -> App:
        return App(self.root / "config")

    def ops(self) -> OpsBackend:
        return ops_backend_for(self.app().config, "q")


def write_config(root: Path, queue_block: str, database_url: str) -> None:
    (root / "config").mkdir(parents=True)
    (root / "config" / "queue.toml").write_text(
        f'default = "q"\n\n[connections.q]\n{queue_block}\n[connections.inline]\ndriver = "sync"\n\n'
        '[failed]\ndriver = "database"\n'
    )
    (root / "config" / "database.toml").write_text(f'default = "main"\n[connections.main]\nurl = "{database_url}"\n')


def _databases(kind: str, tmp_path: Path) -> Iterator[str]:
    if kind == "postgresql":
        yield from _scratch_postgresql(f"t_{os.urandom(6).hex()}")
    elif kind == "mysql":
        yield from _scratch_mysql(f"t_{os.urandom(6).hex()}")
    else:
        yield f"sqlite:///{tmp_path / 'app' / 'database.sqlite'}"


@pytest.fixture(params=["redis", "sqlite", "postgresql", "mysql"])
def cli_app(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    key_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[CliApp]:
    kind = request.param
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "app"
    for url in _databases("sqlite" if kind == "redis" else kind, tmp_path):
        if kind == "redis":
            redis_url = request.getfixturevalue("redis_server_url")
            request.getfixturevalue("real_redis")  # deletes this test's keys afterwards
            monkeypatch.setattr(oxide.ops.redis_ops, "DEFAULT_NAMESPACE", key_prefix)
            write_config(root, f'driver = "redis"\nurl = "{redis_url}"\nqueue = "{key_prefix}default"\n', url)
            prefix = key_prefix
        else:
            write_config(root, 'driver = "database"\nqueue = "default"\n', url)
            prefix = ""
        app = CliApp(root, kind, prefix, capsys)
        assert app.run("vendor:publish", "queue")[0] == 0
        assert app.run("migrate")[0] == 0
        yield app


def push(app: CliApp, queue: str, n: int) -> None:
    """Push ``n`` jobs onto ``queue`` of the connection "q", as a producer would."""
    producer = App(app.root / "config")
    try:
        producer.push_many("q", queue, [Job("e.v", "l.L", {}) for _ in range(n)])
    finally:
        producer.close()
