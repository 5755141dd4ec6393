"""The Prometheus exporter: what a scrape returns, parsed by prometheus_client's own parser, against what was run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from oxide import App, Event, Mode
from oxide.ops.metrics import QueueCollector, registry_for
from oxide.ops.presence import Presence
from oxide.worker import Worker, WorkerOptions
from tests.integration.ops_apps import CliApp, cli_app, push

__all__ = ["cli_app"]  # the fixture, imported for the tests below


@dataclass
class Charged(Event):
    event_name = "shop.charged"
    order: int


class Declined:
    def handle(self, event: Charged) -> None:
        raise RuntimeError(f"card declined for order {event.order}")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, keyed by name and sorted labels."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_a_scrape_reports_what_the_workers_ran_and_what_waits(cli_app: CliApp) -> None:
    work, card = cli_app.queue("work"), cli_app.queue("card")
    push(cli_app, work, 2)
    app = App(cli_app.root / "config")
    app.listen(Charged, Declined, Mode.queue("q").on_queue(card))
    app.dispatch(Charged(order=7))
    Worker(app, "q", [card], WorkerOptions(stop_when_empty=True, handle_signals=False)).run()
    ops = cli_app.ops()
    presence = Presence(app, "q", [work, card], backend=ops, host="box")
    presence.started()
    for secs in (0.02, 0.3, 45.0):
        presence.record(work, "shop.Ship", "done", secs)
    presence.record(card, "shop.Declined", "failed", 0.01)
    presence.record(card, "shop.Declined", "retried", 7200.0)
    presence.beat()

    text = generate_latest(registry_for(QueueCollector(app.config, [ops]))).decode()
    got = samples(text)
    ship = (("connection", "q"), ("listener", "shop.Ship"), ("queue", work))
    assert got[("oxide_queue_jobs_total", (*ship[:2], ("outcome", "done"), ship[2]))] == 3
    assert got[("oxide_queue_jobs_total", (*ship[:2], ("outcome", "failed"), ship[2]))] == 0
    le = {
        bound: got[("oxide_queue_job_run_seconds_bucket", (ship[0], ("le", bound), *ship[1:]))]
        for bound in ("0.01", "0.025", "0.5", "60.0", "3600.0", "+Inf")
    }
    assert le == {"0.01": 0, "0.025": 1, "0.5": 2, "60.0": 3, "3600.0": 3, "+Inf": 3}
    assert got[("oxide_queue_job_run_seconds_count", ship)] == 3
    assert got[("oxide_queue_job_run_seconds_sum", ship)] == 45.32
    declined = (("connection", "q"), ("listener", "shop.Declined"), ("queue", card))
    assert got[("oxide_queue_job_run_seconds_bucket", (declined[0], ("le", "3600.0"), *declined[1:]))] == 1
    assert got[("oxide_queue_job_run_seconds_bucket", (declined[0], ("le", "+Inf"), *declined[1:]))] == 2
    per_queue = (("connection", "q"), ("queue", work))
    assert got[("oxide_queue_ready_jobs", per_queue)] == 2
    assert got[("oxide_queue_reserved_jobs", per_queue)] == 0
    assert got[("oxide_queue_paused", per_queue)] == 0
    assert got[("oxide_queue_oldest_ready_age_seconds", per_queue)] >= 0
    assert got[("oxide_queue_failed_jobs", (("connection", "q"), ("queue", card)))] == 1  # the worker's row
    assert got[("oxide_queue_workers", (("connection", "q"),))] == 1
    assert got[("oxide_queue_backend_up", (("connection", "q"),))] == 1
    presence.stopped()
    presence.record(work, "shop.Ship", "done", 1.0)
    presence.beat()  # a new worker process would start from zero; the backend's counter goes on
    again = samples(generate_latest(registry_for(QueueCollector(app.config, [ops]))).decode())
    assert again[("oxide_queue_jobs_total", (*ship[:2], ("outcome", "done"), ship[2]))] == 4
    app.close()
    ops.close()


def test_an_unreachable_backend_is_reported_as_down_not_as_an_error(tmp_path: Path) -> None:
    from oxide.config import ConnectionConfig, load_config
    from oxide.ops.redis_ops import RedisOps

    config = load_config(None, environ={"QUEUE_FAILED_DRIVER": "none"})
    down = RedisOps(ConnectionConfig(name="gone", driver="redis", url="redis://127.0.0.1:1/0"))
    got = samples(generate_latest(registry_for(QueueCollector(config, [down]))).decode())
    assert got[("oxide_queue_backend_up", (("connection", "gone"),))] == 0
    assert not [key for key in got if key[0] == "oxide_queue_ready_jobs"]


def test_the_exporter_serves_over_http_and_stops_on_sigterm(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "queue.toml").write_text(
        'default = "db"\n[connections.db]\ndriver = "database"\n[failed]\ndriver = "database"\n'
    )
    (tmp_path / "config" / "database.toml").write_text(
        f'default = "main"\n[connections.main]\nurl = "sqlite:///{tmp_path / "app.sqlite"}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUEUE_", "DB_", "OXIDE_APP"))}
    oxide = [sys.executable, "-m", "oxide", "--config", str(tmp_path / "config")]
    subprocess.run([*oxide, "vendor:publish", "queue"], check=True, capture_output=True, env=env, cwd=tmp_path)
    subprocess.run([*oxide, "migrate"], check=True, capture_output=True, env=env, cwd=tmp_path)
    producer = App(tmp_path / "config")
    producer.push_many("db", "mail", [_job() for _ in range(5)])
    producer.close()
    server = subprocess.Popen(
        [*oxide, "queue:metrics", "--port", "0"], stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    )
    try:
        assert server.stderr is not None
        line = server.stderr.readline()
        assert line.startswith("Serving metrics on http://127.0.0.1:")
        url = line.split()[-1]
        with urllib.request.urlopen(url, timeout=30) as reply:
            assert reply.headers["Content-Type"].startswith("text/plain")
            got = samples(reply.read().decode())
        assert got[("oxide_queue_ready_jobs", (("connection", "db"), ("queue", "mail")))] == 5
        assert got[("oxide_queue_backend_up", (("connection", "db"),))] == 1
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()


def _job() -> Any:
    from oxide.wire import Job

    return Job("e.v", "l.L", {})
