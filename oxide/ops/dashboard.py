"""The dashboard: a WSGI application (``oxide queue:dashboard`` serves it; any WSGI server can mount it).

Read-only unless built with ``auth``: then every request needs HTTP basic auth, and
the failed-job actions (retry, forget, flush) are offered. Every action is a POST
carrying the page's CSRF token (an HMAC of the user under a key made at start);
a POST whose ``Origin`` is another site is refused too. Pages forbid framing and
run only their own nonce'd script (the confirmation before an action). URLs are
shown redacted. Mounted under a prefix, links follow ``SCRIPT_NAME``::

    from oxide.ops.dashboard import BasicAuth, Dashboard
    dashboard = Dashboard(app, auth=BasicAuth("ops", os.environ["OXIDE_DASHBOARD_PASSWORD"]))

Serve it from a threaded server (``ThreadingWSGIServer`` below): browsers open spare connections
that a one-thread server would sit waiting on.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit
from wsgiref.simple_server import WSGIServer

from ..config import redact_url
from ..errors import OxideError
from . import OpsBackend, ops_backend_for
from .page import State, render_page, state_json
from .views import failed_counts, queue_stats

if TYPE_CHECKING:
    from ..app import App

__all__ = ["BasicAuth", "Dashboard", "ThreadingWSGIServer"]

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
_ACTION = re.compile(r"^/failed/(?:(\d+)/(retry|forget)|(flush))$")
FAILED_SHOWN = 200


@dataclass(frozen=True)
class BasicAuth:
    """HTTP basic auth with one user; the password should come from the environment, never a file in the repo."""

    user: str
    password: str = ""

    def __repr__(self) -> str:
        return f"BasicAuth(user={self.user!r}, password=***)"

    def check(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        # Both compared in constant time, so neither leaks through timing.
        return hmac.compare_digest(user.encode(), self.user.encode()) & hmac.compare_digest(
            password.encode(), self.password.encode()
        )


class Dashboard:
    """The WSGI application over the queue connections of ``app`` (all with a backend, or those named)."""

    def __init__(
        self,
        app: App,
        *,
        auth: BasicAuth | None = None,
        connections: Sequence[str] | None = None,
        backends: Sequence[OpsBackend] | None = None,
    ) -> None:
        config = app.config
        self.app = app
        self.auth = auth
        if backends is None:
            names = connections or [n for n, c in config.connections.items() if c.driver in ("redis", "database")]
            backends = [ops_backend_for(config, n) for n in names]
        self.backends = list(backends)
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()

    # -- WSGI --------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        # One request at a time, and the backends' connections closed after each: a threaded server
        # runs each request in a thread of its own, and a SQLite connection serves only the thread
        # that opened it. A dashboard's requests are few; reconnecting costs less than a page.
        with self._lock:
            try:
                return self._handle(environ, start_response)
            finally:
                for backend in self.backends:
                    backend.close()

    def _handle(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "") or "/"
        base = environ.get("SCRIPT_NAME", "").rstrip("/")
        if self.auth is not None and not self.auth.check(environ.get("HTTP_AUTHORIZATION")):
            return self._respond(
                start_response,
                "401 Unauthorized",
                "text/plain",
                b"authentication required\n",
                [("WWW-Authenticate", 'Basic realm="oxide queue", charset="UTF-8"')],
            )
        if method == "GET" and path == "/":
            said = parse_qs(environ.get("QUERY_STRING", "")).get("said", [""])[0][:300]
            nonce = secrets.token_urlsafe(16)
            csrf = self._csrf() if self.auth is not None else None
            html = render_page(self.state(), base=base, csrf=csrf, nonce=nonce, said=said)
            csp = (
                f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; "
                "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
            )
            return self._respond(
                start_response, "200 OK", "text/html; charset=utf-8", html.encode(), [("Content-Security-Policy", csp)]
            )
        if method == "GET" and path == "/state.json":
            body = json.dumps(state_json(self.state())).encode()
            return self._respond(start_response, "200 OK", "application/json", body)
        match = _ACTION.match(path)
        if match is None:
            return self._respond(start_response, "404 Not Found", "text/plain", b"not found\n")
        if method != "POST":
            return self._respond(
                start_response, "405 Method Not Allowed", "text/plain", b"POST only\n", [("Allow", "POST")]
            )
        if self.auth is None:
            return self._respond(
                start_response, "403 Forbidden", "text/plain", b"read-only dashboard: start it with an auth setting\n"
            )
        if not self._same_origin(environ) or not self._token_ok(environ):
            return self._respond(start_response, "403 Forbidden", "text/plain", b"missing or wrong CSRF token\n")
        job_id, verb, flush = match.groups()
        said = self._act(int(job_id) if job_id else None, verb or flush)
        location = f"{base}/?said={quote(said)}"
        return self._respond(start_response, "303 See Other", "text/plain", b"", [("Location", location)])

    def _respond(
        self, start_response: StartResponse, status: str, kind: str, body: bytes, extra: Sequence[tuple[str, str]] = ()
    ) -> list[bytes]:
        headers = [
            ("Content-Type", kind),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("X-Frame-Options", "DENY"),
            ("X-Content-Type-Options", "nosniff"),
            # Not no-referrer: with it, browsers send "Origin: null" on our own forms, which we refuse.
            ("Referrer-Policy", "same-origin"),
            *extra,
        ]
        start_response(status, headers)
        return [body]

    # -- CSRF --------------------------------------------------------------------------------------

    def _csrf(self) -> str:
        user = self.auth.user if self.auth is not None else ""
        return hmac.new(self._key, b"csrf:" + user.encode(), hashlib.sha256).hexdigest()

    def _token_ok(self, environ: dict[str, Any]) -> bool:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return False
        body = environ["wsgi.input"].read(min(length, 4096)) if length > 0 else b""
        sent = parse_qs(body.decode("utf-8", "replace")).get("csrf", [""])[0]
        return hmac.compare_digest(sent.encode(), self._csrf().encode())

    @staticmethod
    def _same_origin(environ: dict[str, Any]) -> bool:
        origin = environ.get("HTTP_ORIGIN")
        if not origin or origin == "null":
            return origin is None
        return bool(urlsplit(origin).netloc == environ.get("HTTP_HOST", ""))

    # -- what it shows and does --------------------------------------------------------------------

    def state(self) -> State:
        from ..failed import store_for
        from ..failed.store import DatabaseFailedJobProvider

        config = self.app.config
        problems: list[str] = []
        try:
            failed = failed_counts(config)
        except OxideError as exc:
            problems.append(f"failed jobs: {exc}")
            failed = None
        stats, workers, minutes = [], [], []
        for backend in self.backends:
            try:
                queues = backend.queues()
                stats += queue_stats(backend, queues, failed)
                workers += backend.workers()
                minutes += backend.minutes(queues)
            except OxideError as exc:
                problems.append(f"connection {backend.name}: {exc}")
        store = store_for(config)
        rows: Sequence[Any] = []
        if isinstance(store, DatabaseFailedJobProvider):
            try:
                rows = list(store.all())[-FAILED_SHOWN:]
            except OxideError as exc:
                problems.append(f"failed jobs: {exc}")
            finally:
                store.database.close()
        connections = [
            (b.name, config.connection(b.name).driver, _where(config.connection(b.name), config.root))
            for b in self.backends
        ]
        return State(
            connections,
            stats,
            workers,
            minutes,
            rows,
            isinstance(store, DatabaseFailedJobProvider),
            problems,
            time.time(),
        )

    def _act(self, job_id: int | None, verb: str) -> str:
        from ..drivers import Driver, check_queue_name, make_driver
        from ..failed import store_for
        from ..failed.retry import retry_jobs
        from ..failed.store import DatabaseFailedJobProvider

        store = store_for(self.app.config)
        # Drivers of our own, made and closed here: the app's may belong to another thread (SQLite's must).
        drivers: dict[str, Driver] = {}
        try:
            if verb == "flush":
                return f"Deleted {store.flush()} failed job(s)."
            assert job_id is not None
            if verb == "forget":
                return f"Deleted failed job {job_id}." if store.forget(job_id) else f"No failed job {job_id}."
            rows = list(store.find([job_id]))
            if not rows:
                return f"No failed job {job_id}."

            def push(connection: str, queue: str, body: str) -> None:
                if connection not in drivers:
                    drivers[connection] = make_driver(self.app.config.connection(connection), self.app.run_encoded)
                drivers[connection].push(check_queue_name(queue), body)

            report = retry_jobs(rows, store, push)
            if report.problems:
                return "; ".join(report.problems)
            row = rows[0]
            return f"Retried failed job {job_id} onto {row.connection}/{row.queue}."
        except OxideError as exc:
            return f"Not done: {exc}"
        finally:
            for driver in drivers.values():
                driver.close()
            if isinstance(store, DatabaseFailedJobProvider):
                store.database.close()


def _where(conn: Any, root: Path) -> str:
    """Where a connection's jobs are, without its password; a SQLite file under the application, relative to it."""
    if conn.driver == "redis":
        return str(redact_url(conn.url))
    url = conn.database
    if url is None:
        return ""
    if url.dialect == "sqlite" and url.path and Path(url.path).is_relative_to(root):
        return f"sqlite:///{Path(url.path).relative_to(root)}"
    return str(url.redacted())


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """wsgiref's server, one thread per connection, so that an idle browser connection blocks no one."""

    daemon_threads = True
