"""A worker with a listener stuck on a slot thread, in a process of its own: ``python -m tests.unit.stuck_slot_child``.

Run untraced on purpose: on CPython 3.11 an exception raised into a thread that is blocked in C
(the stuck listener) stalls every thread that runs under a trace function (coverage, a debugger)
until it lands; a process without a tracer shows what workers in production do. Prints one JSON
object: the stop reason, the exit statuses asked for, the jobs started, and what Redis holds.
"""

from __future__ import annotations

import functools
import json
import threading
from dataclasses import dataclass, field

import fakeredis

import oxide.worker.loop
from oxide import App, Event, Mode
from oxide.config import Config, ConnectionConfig, DatabaseConfig
from oxide.drivers.redis import RedisDriver
from oxide.drivers.reservations import keys_of
from oxide.supervision import Supervisor
from oxide.wire import Job
from oxide.worker import Worker, WorkerOptions


@dataclass
class Held(Event):
    event_name = "test.held"
    token: str


@dataclass
class Stuck:
    """Waits where no exception can land (a C-level wait) for the stuck job; returns for the others."""

    release: threading.Event = field(default_factory=threading.Event)
    started: list[str] = field(default_factory=list)

    def handle(self, event: Held) -> None:
        self.started.append(event.token)
        if event.token == "stuck":
            self.release.wait(60)


def main() -> None:
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    connection = ConnectionConfig(
        name="redis", driver="redis", block_timeout_secs=0.05, poll_interval_secs=0.02, visibility_timeout_secs=30
    )
    config = Config(
        config_dir=None,  # type: ignore[arg-type]
        root=None,  # type: ignore[arg-type]
        default="redis",
        connections={"redis": connection},
        failed_driver="none",
        database=DatabaseConfig("sqlite", {}),
    )
    app = App(config=config)
    driver = RedisDriver(connection, client=client)
    app.use_driver("redis", driver)
    listener = Stuck()
    app.listen(Held, listener, Mode.queue("redis").timeout(0.05))
    name = f"{Stuck.__module__}.{Stuck.__qualname__}"
    driver.push_many("work", [Job(Held.event_name, name, {"token": t}).to_json() for t in ("stuck", "fine")])
    exits: list[int] = []
    oxide.worker.loop.Supervisor = functools.partial(Supervisor, exit_process=exits.append)  # type: ignore[misc]
    failed: list[object] = []
    worker = Worker(app, "redis", ["work"], WorkerOptions(concurrency=2, handle_signals=False), failer=failed.append)
    try:
        reason = worker.run()
    finally:
        listener.release.set()
    ready, reserved = keys_of("work")[:2]
    print(
        json.dumps(
            {
                "reason": reason.value,
                "exits": exits,
                "started": sorted(listener.started),
                "ready": client.llen(ready),
                "reserved": client.zcard(reserved),
                "failed": len(failed),
            }
        )
    )


if __name__ == "__main__":
    main()
