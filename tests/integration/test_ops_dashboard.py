"""The dashboard as a WSGI application, called directly: every route, mode and refusal, on Redis and each database."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from oxide import App
from oxide.failed import FailedJob
from oxide.failed.store import DatabaseFailedJobProvider
from oxide.ops import Minute
from oxide.ops.dashboard import BasicAuth, Dashboard
from oxide.ops.page import plot_svg
from tests.integration.ops_apps import CliApp, cli_app, push

__all__ = ["cli_app"]  # the fixture, imported for the tests below

AUTH = BasicAuth("ops", "pw")
GOOD = "Basic " + base64.b64encode(b"ops:pw").decode()


def call(app: Dashboard, method: str, path: str, body: bytes = b"", **headers: str) -> tuple[str, dict[str, str], str]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": headers.pop("script_name", ""),
        "QUERY_STRING": headers.pop("query", ""),
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_HOST": "127.0.0.1:8080",
        "wsgi.input": io.BytesIO(body),
        **{f"HTTP_{k.upper()}": v for k, v in headers.items()},
    }
    got: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]]) -> None:
        got["status"], got["headers"] = status, dict(response_headers)

    text = b"".join(app(environ, start_response)).decode()
    return got["status"], got["headers"], text


def fail_one(cli_app: CliApp, queue: str, event: str = "shop.<charged>") -> None:
    from datetime import UTC, datetime

    store = DatabaseFailedJobProvider(_database(cli_app))
    store.log(
        FailedJob("", "q", queue, event, "shop.Charge", '{"order":1}', "RuntimeError: <b>no</b>", datetime.now(UTC))
    )
    store.database.close()


def _database(cli_app: CliApp) -> Any:
    from oxide.db import database_for

    return database_for(App(cli_app.root / "config").config)


def token(page: str) -> str:
    return page.split('<meta name="csrf-token" content="', 1)[1].split('"', 1)[0]


def test_read_only_shows_everything_offers_nothing(cli_app: CliApp) -> None:
    queue = cli_app.queue("mail")
    push(cli_app, queue, 2)
    fail_one(cli_app, queue)
    dashboard = Dashboard(cli_app.app(), connections=["q"])
    status, headers, page = call(dashboard, "GET", "/")
    assert status == "200 OK"
    assert headers["X-Frame-Options"] == "DENY"
    assert "read-only" in page
    assert f'<tr data-queue="{queue}">' in page
    assert "shop.&lt;charged&gt;" in page  # escaped
    assert "<b>no</b>" not in page
    assert "csrf" not in page
    state = json.loads(call(dashboard, "GET", "/state.json")[2])
    [row] = [q for q in state["queues"] if q["queue"] == queue]
    assert (row["ready"], row["failed"]) == (2, 1)
    assert call(dashboard, "POST", "/failed/flush", b"csrf=x")[0] == "403 Forbidden"
    assert call(dashboard, "GET", "/failed/flush")[0] == "405 Method Not Allowed"
    assert call(dashboard, "GET", "/nope")[0] == "404 Not Found"


def test_actions_with_auth_and_token_forget_retry_and_flush(cli_app: CliApp) -> None:
    queue = cli_app.queue("mail")
    for _ in range(3):
        fail_one(cli_app, queue)
    dashboard = Dashboard(cli_app.app(), auth=AUTH)
    assert call(dashboard, "GET", "/")[0] == "401 Unauthorized"
    status, _, page = call(dashboard, "GET", "/", authorization=GOOD, script_name="/ops")
    assert status == "200 OK"
    assert 'action="/ops/failed/1/retry"' in page
    form = f"csrf={token(page)}".encode()
    status, headers, _ = call(dashboard, "POST", "/failed/1/forget", form, authorization=GOOD, script_name="/ops")
    assert (status, unquote(headers["Location"])) == ("303 See Other", "/ops/?said=Deleted failed job 1.")
    said = unquote(call(dashboard, "POST", "/failed/1/forget", form, authorization=GOOD)[1]["Location"])
    assert said == "/?said=No failed job 1."
    said = unquote(call(dashboard, "POST", "/failed/2/retry", form, authorization=GOOD)[1]["Location"])
    assert said == f"/?said=Retried failed job 2 onto q/{queue}."
    assert cli_app.ops().stats([queue])[0].ready == 1
    said = unquote(call(dashboard, "POST", "/failed/9/retry", form, authorization=GOOD)[1]["Location"])
    assert said == "/?said=No failed job 9."
    said = unquote(call(dashboard, "POST", "/failed/flush", form, authorization=GOOD)[1]["Location"])
    assert said == "/?said=Deleted 1 failed job(s)."
    page = call(dashboard, "GET", "/", authorization=GOOD, query="said=Deleted+1")[2]
    assert '<p class="said" id="said">Deleted 1</p>' in page
    assert "No failed jobs." in page


def test_bad_credentials_and_bodies_are_refused() -> None:
    assert not AUTH.check(None)
    assert not AUTH.check("Bearer x")
    assert not AUTH.check("Basic !!!")
    assert not AUTH.check("Basic " + base64.b64encode(b"ops:wrong").decode())
    assert AUTH.check(GOOD)
    assert "pw" not in repr(AUTH)


def test_the_plot_draws_runs_and_mean_run_time_of_the_last_hour() -> None:
    now = 60 * 1000 + 30.0
    minutes = [
        Minute("a", 1000, done=4, failed=1, seconds=10.0),
        Minute("b", 999, done=2, seconds=1.0),
        Minute("a", 900, done=9),
    ]
    svg = plot_svg(minutes, now)
    assert svg.count('class="done"') == 2  # minute 900 is more than an hour ago
    assert svg.count('class="failed"') == 1
    assert "runs/min (max 5)" in svg
    assert "<polyline" in svg
    assert "<rect" not in plot_svg([], now)


def test_the_dashboard_command_serves_until_sigterm(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "queue.toml").write_text('default = "db"\n[connections.db]\ndriver = "database"\n')
    (tmp_path / "config" / "database.toml").write_text(
        f'default = "main"\n[connections.main]\nurl = "sqlite:///{tmp_path / "app.sqlite"}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUEUE_", "DB_", "OXIDE_"))}
    oxide = [sys.executable, "-m", "oxide", "--config", str(tmp_path / "config")]
    for step in ("vendor:publish", "migrate"):
        subprocess.run(
            [*oxide, step, *(["queue"] if step == "vendor:publish" else [])],
            check=True,
            capture_output=True,
            env=env,
            cwd=tmp_path,
        )
    server = subprocess.Popen(
        [*oxide, "queue:dashboard", "--port", "0", "--auth", "basic", "--user", "ops"],
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "OXIDE_DASHBOARD_PASSWORD": "pw"},
        cwd=tmp_path,
    )
    try:
        assert server.stderr is not None
        line = server.stderr.readline()
        assert line.startswith("Serving the dashboard on http://127.0.0.1:")
        assert line.endswith("(basic auth as 'ops')\n")
        url = line.split()[4]
        request = urllib.request.Request(url, headers={"Authorization": GOOD})
        with urllib.request.urlopen(request, timeout=30) as reply:
            assert "<h1>oxide queue</h1>" in reply.read().decode()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=30)
        assert refused.value.code == 401
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
