"""The operator commands acting on real workers, on Redis and on the database driver over each database.

- a paused queue is left out of the takes while the worker's other queues are served;
- ``queue:restart`` stops the workers started before it (exit reason ``restart``), not those after;
- a worker is listed by ``queue:workers`` with the job it is running, and a worker killed with
  SIGKILL drops out of the registry by itself;
- the metrics counters count what the worker ran.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oxide import App, Event, Mode
from oxide.ops.presence import Presence
from oxide.wire import Job
from oxide.worker import StopReason, Worker, WorkerOptions
from tests.integration.ops_apps import CliApp, cli_app

__all__ = ["cli_app"]


@dataclass
class Visit(Event):
    event_name = "ops.visit"
    token: str
    sleep_ms: float = 0.0


@dataclass
class Visitor:
    seen: list[str] = field(default_factory=list)

    def handle(self, event: Visit) -> None:
        if event.sleep_ms:
            time.sleep(event.sleep_ms / 1000)
        self.seen.append(event.token)


LISTENER = f"{Visitor.__module__}.{Visitor.__qualname__}"


def visits(app: App, queue: str, *tokens: str, sleep_ms: float = 0.0) -> None:
    app.push_many("q", queue, [Job(Visit.event_name, LISTENER, {"token": t, "sleep_ms": sleep_ms}) for t in tokens])


def wait_for(condition: Callable[[], object], what: str, secs: float = 20.0) -> None:
    deadline = time.monotonic() + secs  # a liveness bound, never a measurement
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def worker_for(cli_app: CliApp, queues: list[str], visitor: Visitor, **options: Any) -> tuple[App, Worker]:
    app = cli_app.app()
    app.listen(Visit, visitor, Mode.queue("q"))
    presence = Presence(app, "q", queues)
    options.setdefault("handle_signals", False)
    return app, Worker(app, "q", queues, WorkerOptions(**options), presence=presence)


def test_a_paused_queue_is_skipped_while_the_others_are_served(cli_app: CliApp) -> None:
    high, low = cli_app.queue("high"), cli_app.queue("low")
    producer = cli_app.app()
    visits(producer, high, "h1", "h2")
    visits(producer, low, "l1", "l2", "l3")
    assert cli_app.run("queue:pause", f"q:{high}")[0] == 0
    visitor = Visitor()
    app, worker = worker_for(cli_app, [high, low], visitor, stop_when_empty=True, concurrency=2)
    assert worker.run() is StopReason.QUEUE_EMPTY
    assert sorted(visitor.seen) == ["l1", "l2", "l3"]  # the higher queue waits, paused
    assert producer.driver("q").size(high) == 2
    assert cli_app.run("queue:resume", high)[0] == 0
    _, again = worker_for(cli_app, [high, low], visitor, stop_when_empty=True)
    assert again.run() is StopReason.QUEUE_EMPTY
    assert sorted(visitor.seen) == ["h1", "h2", "l1", "l2", "l3"]
    producer.close()
    app.close()


def run_in_thread(worker: Worker) -> tuple[threading.Thread, list[StopReason]]:
    reasons: list[StopReason] = []
    thread = threading.Thread(target=lambda: reasons.append(worker.run()), daemon=True)
    thread.start()
    return thread, reasons


def test_restart_stops_the_workers_started_before_it_and_not_those_after(cli_app: CliApp) -> None:
    queue = cli_app.queue("default")
    visitor = Visitor()
    app, before = worker_for(cli_app, [queue], visitor, concurrency=2)
    thread, reasons = run_in_thread(before)
    wait_for(lambda: json.loads(cli_app.run("queue:workers", "--json")[1]), "the worker to register")
    assert cli_app.run("queue:restart")[0] == 0
    thread.join(20)
    assert reasons == [StopReason.RESTART]
    # Started after the signal: it sees the same mark at its first beat and keeps working past later ones.
    visits(app, queue, "after")
    _, after = worker_for(cli_app, [queue], visitor, max_time_secs=2.5)
    assert after.run() is StopReason.MAX_TIME
    assert visitor.seen == ["after"]
    app.close()


def test_a_worker_is_listed_with_its_job_and_counted_in_the_metrics(cli_app: CliApp) -> None:
    queue = cli_app.queue("default")
    visitor = Visitor()
    app, worker = worker_for(cli_app, [queue], visitor, concurrency=2)
    visits(app, queue, "slow", sleep_ms=3000)
    visits(app, queue, "quick")
    thread, reasons = run_in_thread(worker)

    def running_slow() -> bool:
        listed = json.loads(cli_app.run("queue:workers", "--json")[1])
        return bool(listed) and [j["uuid"] for j in listed[0]["jobs"]] == [None] and listed[0]["done"] >= 1

    wait_for(running_slow, "the registry to show the slow job in hand and the quick one done")
    [listed] = json.loads(cli_app.run("queue:workers", "--json")[1])
    assert listed["queues"] == [queue]
    assert [j["listener"] for j in listed["jobs"]] == [LISTENER]
    worker.stop()
    thread.join(20)
    assert reasons == [StopReason.INTERRUPTED]
    assert json.loads(cli_app.run("queue:workers", "--json")[1]) == []  # a clean stop removes the record
    # Both ran to the end (the stop lets the job in hand finish), and the counters say so.
    assert sorted(visitor.seen) == ["quick", "slow"]
    ops = cli_app.ops()
    [counted] = [m for m in ops.metrics() if m.queue == queue]
    assert (counted.listener, counted.counts.get("done"), sum(counted.buckets)) == (LISTENER, 2, 2)
    assert counted.seconds >= 3.0  # the slow one's run time is in there
    ops.close()
    app.close()


KILLED_WORKER = """
import sys, time
from oxide import App, Mode
from oxide.ops.presence import Presence
from oxide.worker import Worker, WorkerOptions
sys.path.insert(0, sys.argv[3])
from tests.integration.test_ops_worker import LISTENER, Visit, Visitor
import oxide.ops.redis_ops
oxide.ops.redis_ops.DEFAULT_NAMESPACE = sys.argv[4]
app = App(sys.argv[1])
app.listen(Visit, Visitor(), Mode.queue("q"))
presence = Presence(app, "q", [sys.argv[2]], ttl_secs=1.0)
Worker(app, "q", [sys.argv[2]], WorkerOptions(handle_signals=False), presence=presence).run()
"""


def test_the_registry_forgets_a_real_worker_killed_with_sigkill_mid_job(cli_app: CliApp) -> None:
    queue = cli_app.queue("default")
    app = cli_app.app()
    visits(app, queue, "long", sleep_ms=60_000)
    repo = str(Path(__file__).resolve().parents[2])
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_WORKER, str(cli_app.root / "config"), queue, repo, cli_app.prefix],
        cwd=cli_app.root.parent,
    )
    try:
        wait_for(
            lambda: [len(w["jobs"]) for w in json.loads(cli_app.run("queue:workers", "--json")[1])] == [1],
            "the worker to show its job in hand",
        )
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        wait_for(lambda: json.loads(cli_app.run("queue:workers", "--json")[1]) == [], "its record to expire")
    finally:
        if child.poll() is None:
            child.kill()
        app.close()
