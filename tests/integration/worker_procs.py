"""Running the real ``oxide`` command as a subprocess, and the files it leaves behind."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oxide.wire import Job
from tests.cluster.servers import port_is_free, wait_for
from tests.conftest import service_missing

REPO = Path(__file__).resolve().parents[2]
SHOP = REPO / "examples" / "shop"
RECORDER_APP = "tests.integration.worker_apps:recorder_app"
TICK_LISTENER = "tests.integration.worker_apps.RecordTick"
OUTCOME = re.compile(
    r"queue=(?P<queue>\S+) (?:event=(?P<event>\S+) listener=(?P<listener>\S+) )?(?:uuid=(?P<uuid>\S+) )?"
    r"duration_ms=\S+ outcome=(?P<outcome>\w+)"
)


def tick(token: str, sleep_ms: float = 0.0, after_ms: float = 0.0) -> str:
    """A job for the recorder app, as any producer would LPUSH it: sleep, record the token, sleep."""
    payload: dict[str, object] = {"sleep_ms": sleep_ms, "token": token}
    if after_ms:
        payload["after_ms"] = after_ms
    return Job("test.tick", TICK_LISTENER, payload, uuid=token).to_json()


def write_config(
    directory: Path,
    block_timeout_secs: float = 5.0,
    *,
    visibility_timeout_secs: float | None = None,
    failed_database: bool = False,
) -> Path:
    """A config/ for the recorder app: one redis connection read from $REDIS_URL.

    Failures are only logged, unless ``failed_database``: then they go to ``failed_jobs`` in a SQLite
    file under ``directory`` (run ``vendor:publish queue`` and ``migrate`` first).
    """
    config = directory / "config"
    config.mkdir(parents=True, exist_ok=True)
    visibility = "" if visibility_timeout_secs is None else f"visibility_timeout_secs = {visibility_timeout_secs}\n"
    failed = "database" if failed_database else "none"
    (config / "queue.toml").write_text(
        'default = "redis"\n\n[connections.redis]\ndriver = "redis"\nurl = "${REDIS_URL}"\n'
        f"block_timeout_secs = {block_timeout_secs}\n{visibility}\n"
        f'[connections.sync]\ndriver = "sync"\n\n[failed]\ndriver = "{failed}"\n',
        encoding="utf-8",
    )
    if failed_database:
        (config / "database.toml").write_text(
            'default = "sqlite"\n\n[connections.sqlite]\nurl = "sqlite:///database/database.sqlite"\n',
            encoding="utf-8",
        )
    return config


def worker_env(redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OXIDE_", "QUEUE_", "REDIS_", "DB_", "DATABASE_"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(REPO), str(SHOP)]),
        PYTHONUNBUFFERED="1",
        REDIS_URL=redis_url,
        QUEUE_CONNECTION="redis",
        QUEUE_FAILED_DRIVER="none",
    )
    env.update(extra)
    return env


@dataclass
class WorkerProcess:
    """A running ``python -m oxide ... queue:work``; its stderr (the log) goes to a file."""

    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def outcomes(self) -> list[dict[str, Any]]:
        return [m.groupdict() for m in OUTCOME.finditer(self.log)]

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"worker did not exit within {timeout} s; log:\n{self.log[-3000:]}") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def start_worker(cwd: Path, env: dict[str, str], app: str, *args: str, log_name: str = "worker.log") -> WorkerProcess:
    log_path = cwd / log_name
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "oxide", "--app", app, "queue:work", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return WorkerProcess(proc, log_path)


def run_oxide(cwd: Path, env: dict[str, str], *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "oxide", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll ``condition``; a liveness bound, not a timing assertion: generous so slow machines pass."""
    wait_for(condition, what, timeout, poll_secs=0.02)


def recorded(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split() if path.exists() else []


# Private servers take the first free port of this range. Set OXIDE_TEST_PRIVATE_REDIS_PORTS (e.g. "6410-6419")
# where other people's servers use the default ones.
PORTS = os.environ.get("OXIDE_TEST_PRIVATE_REDIS_PORTS", "6391-6399")


def port_range(text: str = PORTS) -> range:
    first, _, last = text.partition("-")
    return range(int(first), int(last or first) + 1)


def free_port() -> int:
    for port in port_range():
        if port_is_free(port):
            return port
    raise AssertionError(f"no free port for a private redis-server in {PORTS} (OXIDE_TEST_PRIVATE_REDIS_PORTS)")


class PrivateRedis:
    """A redis-server this test owns: started, stopped or killed at will, on the same port and dir each time.

    ``persistent=True`` turns on the append-only file with an fsync per write, so every write a
    client saw acknowledged survives a kill -9 of the server.
    """

    def __init__(self, binary: str, directory: Path, *, persistent: bool = False) -> None:
        self.binary = binary
        self.directory = directory
        self.persistent = persistent
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        import redis

        self.directory.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        log = self.directory / f"server-{self.starts}.log"
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                *persistence,
                "--dir",
                str(self.directory),
                "--logfile",
                str(log),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)

        def answers() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                text = log.read_text(errors="replace") if log.exists() else ""
                raise AssertionError(
                    f"redis-server on port {self.port} exited at start (port in use?):\n{text[-1500:]}"
                )
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        try:
            wait_until(answers, f"redis-server on port {self.port} to answer")
        finally:
            client.close()

    def stop(self) -> None:
        """SIGTERM: the server shuts down cleanly (flushing its append-only file if it has one)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: the server dies at once; only what it had already written survives."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@contextlib.contextmanager
def private_redis_server(directory: Path, *, persistent: bool = False) -> Iterator[PrivateRedis]:
    """A PrivateRedis (not yet started) that is killed, by its pid, however the block ends."""
    binary = shutil.which("redis-server")
    if binary is None:
        service_missing("redis-server (needed to start a private server)", "install the redis-server package")
    assert binary is not None  # service_missing has skipped or failed otherwise
    server = PrivateRedis(binary, directory, persistent=persistent)
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()
