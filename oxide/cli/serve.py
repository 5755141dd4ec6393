"""Subcommands that serve HTTP: the Prometheus exporter and the dashboard. Both bind to 127.0.0.1 unless told."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

from . import EXIT_OK, Context, UsageError

if TYPE_CHECKING:
    from ..ops import OpsBackend

__all__ = ["register"]

FMT = argparse.RawDescriptionHelpFormatter
PASSWORD_ENV = "OXIDE_DASHBOARD_PASSWORD"


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {value}")
    return value


def register(sub: Any) -> None:
    """Add ``queue:metrics`` and ``queue:dashboard`` to the parser."""
    p = sub.add_parser(
        "queue:metrics",
        help="serve Prometheus metrics read from the queue backends",
        formatter_class=FMT,
        description="Serve /metrics for Prometheus: job counters per queue and listener, a run-time histogram,\n"
        "queue sizes, the front job's age, failed counts and live workers, read from the backends at\n"
        "each scrape (workers publish their counts through their heartbeat). Run one per deployment.\n"
        "Needs prometheus_client: pip install 'oxide-queue[metrics]'.\n\n"
        "example:\n  oxide queue:metrics --port 9191",
    )
    _serving_options(p, 9191)
    p.set_defaults(handler=metrics)

    p = sub.add_parser(
        "queue:dashboard",
        help="serve a web page of queues, workers and failed jobs",
        formatter_class=FMT,
        description="Serve a dashboard: queues (sizes, latency, paused), live workers and what they run, the\n"
        "last hour's throughput and run time, and the failed jobs. Read-only unless --auth basic is\n"
        f"given: then every request needs the user (--user) and the password in ${PASSWORD_ENV},\n"
        "and failed jobs can be retried, forgotten or flushed (each asks first; CSRF-protected).\n\n"
        f"example:\n  {PASSWORD_ENV}=... oxide queue:dashboard --port 8080 --auth basic",
    )
    _serving_options(p, 8080)
    p.add_argument("--auth", choices=["basic"], help="require HTTP basic auth, and allow the failed-job actions")
    p.add_argument("--user", default="oxide", help="the basic auth user (default: oxide)")
    p.set_defaults(handler=dashboard)


def _serving_options(p: argparse.ArgumentParser, port: int) -> None:
    p.add_argument("--port", type=_port, default=port, help=f"the TCP port (default: {port})")
    p.add_argument(
        "--bind",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="the address to listen on (default: 127.0.0.1, this machine only)",
    )
    p.add_argument(
        "--connection",
        action="append",
        metavar="NAME",
        help="only this connection (repeatable; default: every redis and database connection)",
    )


def _backends(ctx: Context, names: list[str] | None) -> list[OpsBackend]:
    from ..ops import OpsUnsupported, ops_backend_for

    chosen = names or [n for n, c in ctx.config.connections.items() if c.driver in ("redis", "database")]
    try:
        return [ops_backend_for(ctx.config, n) for n in chosen]
    except OpsUnsupported as exc:
        raise UsageError(str(exc)) from None


def _wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM; the servers run in their own threads."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    while not stop.wait(0.5):
        pass


def metrics(ctx: Context, args: argparse.Namespace) -> int:
    """``queue:metrics``: the exporter, until SIGINT/SIGTERM."""
    try:
        from prometheus_client import start_http_server
    except ImportError:
        raise UsageError(
            "queue:metrics needs prometheus_client, which is not installed: pip install 'oxide-queue[metrics]'"
        ) from None
    from ..ops.metrics import QueueCollector, registry_for

    backends = _backends(ctx, args.connection)
    registry = registry_for(QueueCollector(ctx.config, backends))
    try:
        server, _thread = start_http_server(args.port, addr=args.bind, registry=registry)
    except OSError as exc:
        raise UsageError(f"queue:metrics: cannot listen on {args.bind}:{args.port}: {exc.strerror}") from None
    print(f"Serving metrics on http://{args.bind}:{server.server_port}/metrics", file=sys.stderr, flush=True)
    _wait_for_signal()
    server.shutdown()
    return EXIT_OK


def dashboard(ctx: Context, args: argparse.Namespace) -> int:
    """``queue:dashboard``: the WSGI app on wsgiref, until SIGINT/SIGTERM."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from ..config import environment
    from ..ops.dashboard import BasicAuth, Dashboard, ThreadingWSGIServer

    auth = None
    if args.auth == "basic":
        password = environment().get(PASSWORD_ENV, "")
        if not password:
            raise UsageError(
                f"queue:dashboard --auth basic: set the password in the environment variable {PASSWORD_ENV}"
            )
        auth = BasicAuth(args.user, password)
    app = Dashboard(ctx.app, auth=auth, backends=_backends(ctx, args.connection))

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *values: Any) -> None:  # one line per request, through logging
            import logging

            logging.getLogger("oxide.dashboard").info("%s %s", self.address_string(), format % values)

    try:
        server = make_server(args.bind, args.port, app, server_class=ThreadingWSGIServer, handler_class=QuietHandler)
    except OSError as exc:
        raise UsageError(f"queue:dashboard: cannot listen on {args.bind}:{args.port}: {exc.strerror}") from None
    thread = threading.Thread(target=server.serve_forever, name="oxide-dashboard", daemon=True)
    thread.start()
    mode = "read-only" if auth is None else f"basic auth as {args.user!r}"
    print(f"Serving the dashboard on http://{args.bind}:{server.server_port}/ ({mode})", file=sys.stderr, flush=True)
    _wait_for_signal()
    server.shutdown()
    return EXIT_OK
