"""The dashboard in a real headless Chromium (Debian's chromium + chromium-driver, driven by selenium).

One application (database driver on SQLite), one dashboard server and one browser for the whole
module. The page's counts are checked against what was pushed; a failed job is retried with its
button (after the confirmation) and then run by a real worker. Requests without the password or
without the CSRF token are refused, at the HTTP level.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from oxide import App, Event, Mode
from oxide.ops import ops_backend_for
from oxide.ops.dashboard import BasicAuth, Dashboard, ThreadingWSGIServer
from oxide.ops.presence import InHand, Presence
from oxide.wire import Job
from oxide.worker import Worker, WorkerOptions
from tests.conftest import REQUIRE_SERVICES

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
USER, PASSWORD = "ops", "correct-horse-battery"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1100,1300",
)


@dataclass
class Charged(Event):
    event_name = "shop.charged"
    order: int


class ChargeCard:
    declining = True
    charged: list[int] = []  # noqa: RUF012 - the record of runs the tests read

    def handle(self, event: Charged) -> None:
        if ChargeCard.declining:
            raise RuntimeError(f"card declined for order {event.order}")
        ChargeCard.charged.append(event.order)


@dataclass
class Site:
    app: App
    url: str  # with the credentials, for the browser
    plain: str  # without them, for urllib

    def work(self, queue: str) -> None:
        Worker(self.app, "db", [queue], WorkerOptions(stop_when_empty=True, handle_signals=False)).run()


class Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("dashboard")
    (root / "config").mkdir()
    (root / "config" / "queue.toml").write_text(
        'default = "db"\n[connections.db]\ndriver = "database"\n[failed]\ndriver = "database"\n'
    )
    (root / "config" / "database.toml").write_text(
        f'default = "main"\n[connections.main]\nurl = "sqlite:///{root / "app.sqlite"}"\n'
    )
    from oxide.cli import main

    assert main(["--config", str(root / "config"), "vendor:publish", "queue"]) == 0
    assert main(["--config", str(root / "config"), "migrate"]) == 0
    app = App(root / "config")
    app.listen(Charged, ChargeCard, Mode.queue("db").on_queue("card"))
    app.push_many("db", "mail", [Job("mail.sent", "shop.Mailer", {"n": n}) for n in range(3)])
    app.dispatch(Charged(order=41))
    site = Site(app, "", "")
    site.work("card")  # order 41 fails: one row in failed_jobs
    ops = ops_backend_for(app.config, "db")
    ops.pause("reports", None)
    presence = Presence(app, "db", ["mail", "card"], backend=ops, host="web-1")
    presence.started()
    for secs in (0.2, 0.4, 1.5):
        presence.record("mail", "shop.Mailer", "done", secs)
    presence.record("card", "shop.ChargeCard", "failed", 0.1)
    # One live worker running a job, and a minute of throughput for the plot.
    presence.beat([InHand("mail", "mail.sent", "shop.Mailer", "3f2c", time.time() - 4)])
    dashboard = Dashboard(app, auth=BasicAuth(USER, PASSWORD))
    server = make_server("127.0.0.1", 0, dashboard, server_class=ThreadingWSGIServer, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_port
    site.url, site.plain = f"http://{USER}:{PASSWORD}@127.0.0.1:{port}/", f"http://127.0.0.1:{port}/"
    yield site
    server.shutdown()
    presence.stopped()
    app.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        message = "chromium and chromium-driver are not installed; run: bash .ci/system-packages"
        if REQUIRE_SERVICES:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="oxide-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def cell(browser: Any, selector: str) -> str:
    from selenium.webdriver.common.by import By

    return str(browser.find_element(By.CSS_SELECTOR, selector).text)


def confirm(browser: Any, button: str, *, accept: bool) -> str:
    """Click ``button``, answer the confirmation, and return its question."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    browser.find_element(By.CSS_SELECTOR, button).click()
    alert = WebDriverWait(browser, 30).until(expected_conditions.alert_is_present())
    question = str(alert.text)
    alert.accept() if accept else alert.dismiss()
    return question


def test_the_page_shows_queues_workers_the_plot_and_failed_jobs(site: Site, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.get(site.url)
    assert browser.title == "oxide queue"
    assert cell(browser, 'tr[data-queue="mail"] td.ready') == "3"
    assert cell(browser, 'tr[data-queue="card"] td.failed') == "1"
    assert cell(browser, 'tr[data-queue="reports"] td.paused') == "yes"
    assert cell(browser, "#worker-count") == "(1 live)"
    assert "web-1" in cell(browser, "#workers")
    assert "shop.Mailer on mail for" in cell(browser, "#workers")
    assert "db (database, sqlite:///app.sqlite)" in cell(browser, "p.muted")
    assert cell(browser, "#failed-count") == "(1)"
    assert "card declined for order 41" in cell(browser, 'tr[data-id="1"]')
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg rect.done")) == 1
    assert PASSWORD not in browser.page_source
    shot = Path(os.environ.get("OXIDE_TEST_SCREENSHOT", tmp_path / "dashboard.png"))
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_dismissed_confirmation_changes_nothing(site: Site, browser: Any) -> None:
    browser.get(site.url)
    assert confirm(browser, 'tr[data-id="1"] form[action$="/forget"] button', accept=False) == (
        "Delete failed job 1 for good?"
    )
    browser.get(site.url)
    assert cell(browser, "#failed-count") == "(1)"


def test_a_failed_job_is_retried_with_its_button_and_then_runs(site: Site, browser: Any) -> None:
    browser.get(site.url)
    assert confirm(browser, 'tr[data-id="1"] form[action$="/retry"] button', accept=True) == "Retry failed job 1?"
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    said = WebDriverWait(browser, 30).until(expected_conditions.presence_of_element_located((By.ID, "said")))
    assert said.text == "Retried failed job 1 onto db/card."
    assert cell(browser, "#failed-count") == "(0)"
    assert cell(browser, 'tr[data-queue="card"] td.ready') == "1"
    ChargeCard.declining = False
    site.work("card")
    assert ChargeCard.charged == [41]
    browser.get(site.url)
    assert cell(browser, 'tr[data-queue="card"] td.ready') == "0"


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_requests_without_the_password_or_the_csrf_token_are_refused(site: Site) -> None:
    auth = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
    wrong = {"Authorization": "Basic " + base64.b64encode(f"{USER}:guess".encode()).decode()}
    flush = site.plain + "failed/flush"
    assert _post(flush, b"", {}) == 401
    assert _post(flush, b"csrf=x", wrong) == 401
    assert _post(flush, b"", auth) == 403
    assert _post(flush, b"csrf=forged", auth) == 403
    with urllib.request.urlopen(urllib.request.Request(site.plain, headers=auth), timeout=30) as reply:
        page = reply.read().decode()
        assert "frame-ancestors 'none'" in reply.headers["Content-Security-Policy"]
    token = page.split('<meta name="csrf-token" content="', 1)[1].split('"', 1)[0]
    assert _post(site.plain + "failed/flush", f"csrf={token}".encode(), {**auth, "Origin": "null"}) == 403
    assert _post(flush, f"csrf={token}".encode(), {**auth, "Origin": "http://evil.example"}) == 403
    assert _post(site.plain + "failed/1/forget", f"csrf={token}".encode(), {}) == 401
