"""Subcommands for operators: monitor, clear, pause, resume and restart queues, list the live workers.

Each reads or writes the connection's operator state through :mod:`oxide.ops`
(``docs/operations.md``); nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import OxideError
from . import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, Context, RuntimeFailure, UsageError

if TYPE_CHECKING:
    from ..ops import OpsBackend, QueueStats, WorkerRecord

__all__ = ["register"]

FMT = argparse.RawDescriptionHelpFormatter
TARGET_HELP = "a queue, optionally CONNECTION:QUEUE (default: the default connection of queue.toml)"


def register(sub: Any) -> None:
    """Add the operator subcommands to the parser."""
    p = sub.add_parser(
        "queue:monitor",
        help="show queue sizes and latency; exit 1 when one is too long",
        formatter_class=FMT,
        description="For each queue: the jobs ready, reserved (in hand), delayed and failed, how long the job at\n"
        "the front of the line has waited, whether the queue is paused, and OK or ALERT (ALERT when\n"
        "ready + reserved + delayed >= --max). Exit status: 0 all OK, 1 any ALERT, 2 a usage or\n"
        "connection error: made for cron and CI.\n\n"
        "examples:\n  oxide queue:monitor high,default,low --max 1000\n"
        "  oxide queue:monitor redis:emails,database:reports --json",
    )
    p.add_argument("queues", metavar="[CONN:]QUEUE,...", help="comma-separated queues, each " + TARGET_HELP)
    p.add_argument("--max", type=_count, default=1000, metavar="N", help="the size that raises an ALERT (1000)")
    p.add_argument("--json", action="store_true", help="print a JSON array, one object per queue")
    p.set_defaults(handler=monitor)

    p = sub.add_parser(
        "queue:clear",
        help="delete every job waiting in a queue",
        formatter_class=FMT,
        description="Delete the jobs waiting in one queue, ready and delayed, and say how many went. Jobs in the\n"
        "hands of a worker are left to finish. Asks first when run from a terminal, unless --force.\n\n"
        "example:\n  oxide queue:clear redis --queue emails --force",
    )
    p.add_argument("connection", nargs="?", metavar="CONN", help="the queue connection (default: queue.toml's)")
    p.add_argument("--queue", metavar="NAME", help="the queue (default: the connection's queue setting)")
    p.add_argument("--force", action="store_true", help="do not ask")
    p.set_defaults(handler=clear)

    p = sub.add_parser(
        "queue:pause",
        help="stop workers taking jobs from a queue",
        formatter_class=FMT,
        description="Pause a queue: workers skip it and go on serving their other queues; producers still push.\n"
        "Workers see it within about a second. Lasts until queue:resume, or for --for.\n\n"
        "examples:\n  oxide queue:pause emails\n  oxide queue:pause redis:reports --for 15m",
    )
    p.add_argument("target", metavar="[CONN:]QUEUE", help=TARGET_HELP)
    p.add_argument(
        "--for", dest="duration", metavar="DURATION", help="how long: 90, 90s, 15m, 2h, 1d (default: until resumed)"
    )
    p.set_defaults(handler=pause)

    p = sub.add_parser(
        "queue:resume",
        help="let workers take from a paused queue again",
        description="Lift the pause of a queue; workers take from it again within about a second.",
    )
    p.add_argument("target", metavar="[CONN:]QUEUE", help=TARGET_HELP)
    p.set_defaults(handler=resume)

    p = sub.add_parser(
        "queue:restart",
        help="tell every worker to finish its job and exit",
        formatter_class=FMT,
        description="Store a restart signal in the queue backend: every worker started before it, on every\n"
        "machine, finishes the job in hand and exits 0, so that its process manager starts it again\n"
        "on the new code. Run it after a deploy. Workers started afterwards are not affected.\n"
        "Signals every redis and database connection of queue.toml unless --connection is given.",
    )
    p.add_argument("--connection", action="append", metavar="NAME", help="only this connection (repeatable)")
    p.set_defaults(handler=restart)

    p = sub.add_parser(
        "queue:workers",
        help="list the live workers and what they run",
        description="List the workers whose heartbeat is fresh: host, pid, queues, since when they run, jobs done "
        "and failed, and the jobs in hand with how long each has run. A killed worker drops out within 15 seconds.",
    )
    p.add_argument("connection", nargs="?", metavar="CONN", help="the queue connection (default: queue.toml's)")
    p.add_argument("--json", action="store_true", help="print a JSON array of worker records")
    p.set_defaults(handler=workers)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {value}")
    return value


def backend(ctx: Context, connection: str | None) -> OpsBackend:
    """The operator backend of ``connection``; the sync driver's refusal is a usage error."""
    from ..ops import OpsUnsupported, ops_backend_for

    try:
        return ops_backend_for(ctx.config, connection)
    except OpsUnsupported as exc:
        raise UsageError(str(exc)) from None


def _target(ctx: Context, text: str) -> tuple[str, str]:
    from ..ops.views import split_targets

    targets = split_targets(text, ctx.config.default)
    if len(targets) != 1:
        raise UsageError(f"expected one queue, [CONN:]QUEUE, got {text!r}")
    return targets[0]


def _age(secs: float | None) -> str:
    if secs is None:
        return "-"
    if secs < 120:
        return f"{secs:.0f}s"
    if secs < 7200:
        return f"{secs / 60:.0f}m"
    return f"{secs / 3600:.1f}h"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    lines = [tuple(header), *(tuple(r) for r in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


def monitor(ctx: Context, args: argparse.Namespace) -> int:
    """``queue:monitor``: figures per queue, exit 1 on any ALERT, 2 when a backend cannot be read."""
    from ..ops.views import failed_counts, queue_stats, split_targets

    targets = split_targets(args.queues, ctx.config.default)
    if not targets:
        raise UsageError(f"queue:monitor: no queue named in {args.queues!r}; example: oxide queue:monitor high,low")
    by_connection: dict[str, list[str]] = {}
    for connection, queue in targets:
        by_connection.setdefault(connection, []).append(queue)
    stats: list[QueueStats] = []
    try:
        failed = failed_counts(ctx.config)
    except OxideError as exc:
        # The queues are what is monitored: without the failed-job store the column shows "-".
        print(f"oxide: warning: failed counts not read: {exc}", file=sys.stderr)
        failed = None
    try:
        for connection, queues in by_connection.items():
            ops = backend(ctx, connection)
            try:
                stats += queue_stats(ops, queues, failed)
            finally:
                ops.close()
    except UsageError:
        raise
    except OxideError as exc:
        # Unreachable is not "all OK": a cron line must tell it from both answers.
        print(f"oxide: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    alert = [s.size >= args.max for s in stats]
    if args.json:
        rows = [{**s.to_dict(), "status": "ALERT" if a else "OK"} for s, a in zip(stats, alert, strict=True)]
        print(json.dumps(rows, indent=2))
    else:
        _table(
            ("CONNECTION", "QUEUE", "READY", "RESERVED", "DELAYED", "FAILED", "OLDEST", "PAUSED", "STATUS"),
            [
                (
                    s.connection,
                    s.queue,
                    str(s.ready),
                    str(s.reserved),
                    str(s.delayed),
                    "-" if s.failed is None else str(s.failed),
                    _age(s.oldest_age_secs),
                    "yes" if s.paused else "-",
                    f"ALERT (>= {args.max})" if a else "OK",
                )
                for s, a in zip(stats, alert, strict=True)
            ],
        )
    return EXIT_FAILURE if any(alert) else EXIT_OK


def _ask(question: str) -> bool:
    print(f"{question} [y/N] ", end="", flush=True)
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def clear(ctx: Context, args: argparse.Namespace) -> int:
    """``queue:clear``: delete what waits in one queue, after asking at a terminal."""
    from ..drivers import check_queue_name

    conn = ctx.config.connection(args.connection)
    queue = check_queue_name(args.queue or conn.queue)
    ops = backend(ctx, conn.name)
    try:
        if not args.force and sys.stdin.isatty():
            [stats] = ops.stats([queue])
            waiting = stats.ready + stats.delayed
            if not _ask(f"Delete the {waiting} job(s) waiting in {conn.name}/{queue}?"):
                print("Nothing deleted.")
                return EXIT_OK
        cleared = ops.clear(queue)
    finally:
        ops.close()
    print(f"Cleared {cleared} job(s) from {conn.name}/{queue}.")
    return EXIT_OK


def _until(until_ms: int | None) -> str:
    if until_ms is None:
        return "until queue:resume"
    return "until " + time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(until_ms / 1000))


def pause(ctx: Context, args: argparse.Namespace) -> int:
    """``queue:pause [CONN:]QUEUE [--for DURATION]``."""
    from ..ops.views import parse_duration

    connection, queue = _target(ctx, args.target)
    duration = None
    if args.duration is not None:
        try:
            duration = parse_duration(args.duration)
        except ValueError as exc:
            raise UsageError(f"queue:pause --for: {exc}") from None
    ops = backend(ctx, connection)
    try:
        paused = ops.pause(queue, duration)
    finally:
        ops.close()
    print(f"Paused {connection}/{queue} {_until(paused.until_ms)}.")
    return EXIT_OK


def resume(ctx: Context, args: argparse.Namespace) -> int:
    """``queue:resume [CONN:]QUEUE``."""
    connection, queue = _target(ctx, args.target)
    ops = backend(ctx, connection)
    try:
        lifted = ops.resume(queue)
    finally:
        ops.close()
    print(f"Resumed {connection}/{queue}." if lifted else f"{connection}/{queue} was not paused.")
    return EXIT_OK


def restart(ctx: Context, args: argparse.Namespace) -> int:
    """``queue:restart``: the restart mark on each connection; exit 1 if one could not be reached."""
    from ..ops import OpsUnsupported, ops_backend_for

    names = args.connection or [n for n, c in ctx.config.connections.items() if c.driver in ("redis", "database")]
    if not names:
        print("No redis or database connection in queue.toml: no worker to restart.")
        return EXIT_OK
    problems = 0
    for name in names:
        try:
            ops = ops_backend_for(ctx.config, name)
        except OpsUnsupported as exc:
            raise UsageError(str(exc)) from None
        try:
            ops.request_restart()
        except OxideError as exc:
            print(f"oxide: error: restart signal not stored: {exc}", file=sys.stderr)
            problems += 1
            continue
        finally:
            ops.close()
        print(f"Restart signal stored on {name}: its workers finish their jobs and exit.")
    if problems:
        raise RuntimeFailure(f"{problems} connection(s) did not get the restart signal; run queue:restart again")
    return EXIT_OK


def _since(now: float, then: float) -> str:
    return _age(max(0.0, now - then))


def workers(ctx: Context, args: argparse.Namespace) -> int:
    """``queue:workers``: the live workers of one connection."""
    conn = ctx.config.connection(args.connection)
    ops = backend(ctx, conn.name)
    try:
        listed: list[WorkerRecord] = ops.workers()
    finally:
        ops.close()
    if args.json:
        print(json.dumps([w.to_dict() for w in listed], indent=2))
        return EXIT_OK
    if not listed:
        print(f"No live workers on {conn.name}.")
        return EXIT_OK
    now = time.time()
    rows = []
    for w in listed:
        jobs = ", ".join(f"{j.get('listener') or j.get('event')} ({_since(now, float(j['since']))})" for j in w.jobs)
        rows.append(
            (
                w.host,
                str(w.pid),
                ",".join(w.queues),
                _since(now, w.started_at),
                str(w.done),
                str(w.failed),
                jobs or "idle",
            )
        )
    _table(("HOST", "PID", "QUEUES", "UP", "DONE", "FAILED", "RUNNING"), rows)
    return EXIT_OK
