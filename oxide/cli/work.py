"""``oxide queue:work``: run a worker in the foreground.

Only argparse is needed to build the parser; the worker, the application and
redis-py are imported when the command runs, so ``oxide --help`` stays fast.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from . import EXIT_OK, Context, UsageError

__all__ = ["member_command", "parse_count", "parse_positive", "parse_queues", "parse_seconds", "register"]

DESCRIPTION = """\
Take jobs from the queues of one connection and run their listeners, in the
foreground, until stopped. Queues are served in strict priority: every take
returns the oldest job of the first non-empty queue in --queue.

--concurrency N runs up to N jobs at once in this one process: plain
listeners on N threads, async def listeners as tasks on one event loop. A take
asks for no more jobs than there are free slots, so strict priority holds
whatever N is. --processes P starts P such worker processes and looks after
them: one that dies is restarted (with a growing delay), and signals are passed
on to all.

Ctrl-C (SIGINT) or SIGTERM: no more jobs are taken; the jobs in flight are
finished and their outcomes recorded, jobs taken ahead (--prefetch) and not
started go back to the front of their queues, then the worker exits 0; an idle
worker exits within about a second. A second signal, or --stop-timeout
SECONDS after the first, interrupts the jobs still running and gives them back
to the front of their queues (not counted as an attempt), so a stop never
leaves a job waiting out the visibility timeout.
A job whose listener raises is retried while it has tries left (--tries,
--backoff), then recorded as a failed job (see 'oxide queue:failed'); a message
that cannot be read is recorded at once. The worker goes on either way. A job
in hand stays reserved in Redis: if the worker is killed, the job returns to
its queue after the connection's visibility_timeout_secs, while a live worker
keeps extending it however long the job runs. If Redis goes away the worker
waits and reconnects on its own.

A 'sync' connection runs listeners inline when events are dispatched, so it has
nothing for a worker to take: queue:work says so and exits 0 at once, with or
without --once and --stop-when-empty."""

EPILOG = """\
examples:
  oxide --app shop.app:app queue:work
  oxide --app shop.app:app queue:work --queue=high,default,low
  oxide --app shop.app:app queue:work --concurrency 8 --stop-timeout 25
  oxide --app shop.app:app queue:work --processes 2 --concurrency 8
  oxide --app shop.app:app queue:work --stop-when-empty --max-time=600

exit status: 0 stopped normally (signal, --once, --max-jobs, --max-time,
--stop-when-empty, or nothing to consume); 2 usage or configuration error;
75 a listener overran --timeout and could not be interrupted (restart the
worker; the job returns to its queue after visibility_timeout_secs). With
--processes: 0 when every worker process stopped cleanly, 1 when one kept
dying and the pool gave up, or one did not stop cleanly."""


def register(sub: Any) -> None:
    """Add ``queue:work`` to the parser."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "queue:work",
        help="run a worker: take queued jobs and run their listeners",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--connection",
        metavar="NAME",
        help="the connection in config/queue.toml to take jobs from (default: the file's 'default')",
    )
    parser.add_argument(
        "--queue",
        metavar="Q1,Q2,...",
        help="queue names, highest priority first, comma-separated (default: the connection's 'queue' setting)",
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="run one job, then exit; exit anyway if none arrives within the connection's block_timeout_secs",
    )
    parser.add_argument(
        "--stop-when-empty",
        action="store_true",
        help="exit as soon as every listed queue is empty (for batch runs and cron jobs)",
    )
    parser.add_argument(
        "--max-jobs",
        metavar="N",
        help="take at most N jobs, failed ones included, and exit once they have finished "
        "(default: no limit; 0 also means no limit)",
    )
    parser.add_argument(
        "--max-time",
        metavar="SECONDS",
        help="stop taking jobs after this many seconds, and exit once those in flight have finished "
        "(default: no limit; 0 also means no limit)",
    )
    parser.add_argument(
        "--concurrency",
        metavar="N",
        help="run up to N jobs at once: plain listeners on N threads, async def listeners as tasks on one event "
        "loop (default: the connection's 'concurrency' setting, 1: each job in this thread, in turn)",
    )
    parser.add_argument(
        "--stop-timeout",
        metavar="SECONDS",
        help="once told to stop, wait at most this long for the jobs in flight, then interrupt them and give "
        "them back to the front of their queues (default: the connection's 'stop_timeout_secs'; none: wait "
        "until they end; 0 also means no limit). Set it below your process manager's kill timeout",
    )
    parser.add_argument(
        "--processes",
        metavar="P",
        help="run P worker processes with these options and look after them: restart one that dies, pass "
        "SIGTERM/SIGINT on to all, exit 1 if one keeps dying (default: 1, this process alone). "
        "--once, --max-jobs and --max-time apply to each process",
    )
    parser.add_argument(
        "--health-file",
        metavar="PATH",
        help="touch PATH on every turn of the loop, at most once a second, also while waiting to reconnect: "
        "a file older than a few block_timeout_secs means a stuck worker (a liveness probe for containers; "
        "see docs/operations.md). With --processes, PATH carries the time of the stalest worker process",
    )
    parser.add_argument("--pool-member", metavar="N", help=argparse.SUPPRESS)  # set by --processes for its members
    parser.add_argument(
        "--tries",
        metavar="N",
        help="run a job at most N times before recording it as failed, for listeners that set no "
        "Mode.queue(...).tries() of their own (default: 1, no retries)",
    )
    parser.add_argument(
        "--backoff",
        metavar="SECONDS",
        help="before retry n, wait SECONDS * 2**(n-1) plus up to 25%% jitter, capped at an hour, for listeners "
        "that set no .backoff() of their own (default: 0, retry at once)",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        help="abort a listener running longer than this and count the attempt as failed, for listeners that set "
        "no .timeout() of their own (default: no limit); one that cannot be interrupted makes the worker exit "
        "with status 75 so that a supervisor restarts it, and its job returns to the queue",
    )
    parser.add_argument(
        "--prefetch",
        metavar="N",
        help="reserve up to N jobs per take, all from the highest-priority non-empty queue, in one round trip "
        "(default: the connection's 'prefetch' setting, 1). A job pushed to a higher queue meanwhile waits "
        "until the batch in hand is done; jobs not started when the worker stops go back to the front of "
        "their queue at once",
    )
    parser.set_defaults(handler=run)


def parse_queues(text: str) -> list[str]:
    """``"high,default,low"`` -> the names, checked; a usage error names the bad one."""
    from ..drivers import check_queue_name
    from ..errors import QueueNameError

    names = [part.strip() for part in text.split(",")]
    seen: set[str] = set()
    for name in names:
        if not name:
            raise UsageError(f"--queue: empty queue name in {text!r} (expected names separated by commas)")
        try:
            check_queue_name(name)
        except QueueNameError as exc:
            raise UsageError(f"--queue: {exc}") from None
        if name in seen:
            raise UsageError(f"--queue: {name!r} is listed twice in {text!r}")
        seen.add(name)
    return names


def parse_count(option: str, text: str | None) -> int | None:
    """A whole number >= 0 from the command line; 0 and absent both mean no limit (None)."""
    if text is None:
        return None
    try:
        value = int(text.strip())
    except ValueError:
        raise UsageError(f"{option}: expected a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise UsageError(f"{option}: expected a whole number >= 0, got {text!r}")
    return value or None


def parse_positive(option: str, text: str | None) -> int | None:
    """A whole number >= 1 from the command line, or None when absent."""
    value = parse_count(option, text)
    if text is not None and value is None:
        raise UsageError(f"{option}: expected a whole number >= 1, got {text!r}")
    return value


def parse_seconds(option: str, text: str | None) -> float | None:
    """A finite number of seconds >= 0 from the command line; 0 and absent both mean no limit (None)."""
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        raise UsageError(f"{option}: expected a number of seconds >= 0, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"{option}: expected a finite number of seconds >= 0, got {text!r}")
    return value or None


def run(ctx: Context, args: argparse.Namespace) -> int:
    """The ``queue:work`` handler."""
    # Usage errors first: they need neither the application nor a server.
    queues = parse_queues(args.queue) if args.queue is not None else None
    max_jobs = parse_count("--max-jobs", args.max_jobs)
    max_time = parse_seconds("--max-time", args.max_time)
    tries = parse_count("--tries", args.tries)
    backoff = parse_seconds("--backoff", args.backoff)
    timeout = parse_seconds("--timeout", args.timeout)
    prefetch = parse_count("--prefetch", args.prefetch)
    concurrency = parse_positive("--concurrency", args.concurrency)
    stop_timeout = parse_seconds("--stop-timeout", args.stop_timeout)
    processes = parse_positive("--processes", args.processes)
    if not ctx.app_spec:
        # Without the application no listener is registered, so every job would be recorded as failed.
        raise UsageError("queue:work runs your application's listeners: pass --app MODULE:ATTR or set OXIDE_APP")

    health_file = Path(args.health_file) if args.health_file else None
    if processes is not None and processes > 1:
        from ..worker.pool import Pool

        return Pool(member_command(ctx, args), processes, health_file=health_file).run()
    if args.pool_member is not None:
        _name_the_member(args.pool_member)

    from ..attempts import AttemptPolicy
    from ..worker import StopReason, Worker, WorkerOptions

    options = WorkerOptions(
        once=args.once,
        stop_when_empty=args.stop_when_empty,
        max_jobs=max_jobs,
        max_time_secs=max_time,
        prefetch=prefetch,
        concurrency=concurrency,
        stop_timeout_secs=stop_timeout,
        health_file=health_file,
        policy=AttemptPolicy(tries=tries or 1, backoff_secs=backoff or 0.0, timeout_secs=timeout),
    )
    app = ctx.app
    presence = None
    try:
        conn = app.config.connection(args.connection)
        if conn.driver != "sync":  # a sync connection keeps nothing, its worker included
            from ..ops.presence import Presence

            presence = Presence(app, conn.name, queues or [conn.queue])
        worker = Worker(app, args.connection, queues, options, presence=presence)
        reason = worker.run()
    finally:
        if presence is not None:
            presence.close()
        app.close()
    if reason is StopReason.NOTHING_TO_CONSUME:
        conn = worker.connection
        print(
            f"oxide: connection {conn.name!r} uses the {conn.driver} driver, which runs listeners inline when "
            "events are dispatched: there is nothing for a worker to take. "
            "Name a redis connection with --connection, or set the default in config/queue.toml.",
            file=sys.stderr,
        )
    return EXIT_OK


# The options a pool passes on to each of its members, as they were given.
_PASSED_ON = (
    *("connection", "queue", "max_jobs", "max_time", "tries", "backoff", "timeout", "prefetch"),
    *("concurrency", "stop_timeout"),
)


def member_command(ctx: Context, args: argparse.Namespace) -> list[str]:
    """The command line of one member of a ``--processes`` pool: this one, without ``--processes``."""
    command = [sys.executable, "-m", "oxide"]
    if ctx.app_spec:
        command += ["--app", ctx.app_spec]
    if ctx.config_dir is not None:
        command += ["--config", ctx.config_dir]
    command += ["-v"] * ctx.verbose
    if ctx.quiet:
        command.append("-q")
    command.append("queue:work")
    for dest in _PASSED_ON:
        value = getattr(args, dest)
        if value is not None:
            command.append(f"--{dest.replace('_', '-')}={value}")
    command += [flag for flag, on in (("--once", args.once), ("--stop-when-empty", args.stop_when_empty)) if on]
    return command


def _name_the_member(index: str) -> None:
    """A pool member's log lines say which member and which process wrote them."""
    import logging
    import os

    formatter = logging.Formatter(f"%(asctime)s %(levelname)s %(name)s [worker {index} pid {os.getpid()}]: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
