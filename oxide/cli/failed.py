"""Subcommands for failed jobs: list, retry, forget, flush and prune the ``failed_jobs`` table."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..errors import OxideError
from . import Context, RuntimeFailure, UsageError

if TYPE_CHECKING:
    from ..failed import FailedJobProvider, StoredFailedJob
    from ..failed.store import DatabaseFailedJobProvider

__all__ = ["register"]

FIX_TABLE = "create it with: oxide vendor:publish queue && oxide migrate"
NOT_STORED = 'failed jobs are not stored ([failed] driver = "none" in queue.toml)'


def register(sub: Any) -> None:
    """Add the failed-job subcommands to the parser."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser(
        "queue:failed",
        help="list the failed jobs",
        formatter_class=fmt,
        description="List the jobs recorded in the failed_jobs table, oldest first: id, uuid, connection, queue,\n"
        "event and when it failed (UTC). Use an id with queue:retry or queue:forget.\n"
        "Failures parked while the database was unavailable are moved into the table first.",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print a JSON array of objects, one per row, keyed by the table's column names (for scripts)",
    )
    p.set_defaults(handler=list_failed)

    p = sub.add_parser(
        "queue:retry",
        help="push failed jobs back onto their queues",
        formatter_class=fmt,
        description="Push failed jobs back onto the connection and queue they failed on, as they were first\n"
        "pushed (attempts start again), then delete their rows. A job whose push fails keeps its row.\n\n"
        "examples:\n  oxide queue:retry 3 7     retry the jobs with ids 3 and 7\n"
        "  oxide queue:retry --all   retry every failed job\n"
        "  oxide queue:retry --queue emails   retry every job that failed on the queue 'emails'",
    )
    p.add_argument("ids", nargs="*", metavar="ID", help="ids shown by queue:failed ('all' means --all)")
    p.add_argument("--all", action="store_true", help="retry every failed job")
    p.add_argument("--queue", metavar="NAME", help="retry every failed job of this queue (on any connection)")
    p.set_defaults(handler=retry)

    p = sub.add_parser(
        "queue:forget",
        help="delete one failed job",
        description="Delete one row of the failed_jobs table without retrying it.",
    )
    p.add_argument("id", type=int, metavar="ID", help="the id shown by queue:failed")
    p.set_defaults(handler=forget)

    p = sub.add_parser(
        "queue:flush",
        help="delete every failed job",
        description="Delete every row of the failed_jobs table, and say how many were deleted.",
    )
    p.set_defaults(handler=flush)

    p = sub.add_parser(
        "queue:prune-failed",
        help="delete failed jobs older than some hours",
        description="Delete the failed jobs that failed more than N hours ago (24 by default).",
    )
    p.add_argument(
        "--hours", type=_hours, default=24, metavar="N", help="keep the jobs that failed in the last N hours"
    )
    p.set_defaults(handler=prune)


def _hours(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of hours, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more hours, got {value}")
    return value


def _store(ctx: Context) -> FailedJobProvider:
    from ..failed import store_for

    return store_for(ctx.config)


def _table(store: FailedJobProvider) -> DatabaseFailedJobProvider | None:
    from ..failed.store import DatabaseFailedJobProvider

    return store if isinstance(store, DatabaseFailedJobProvider) else None


def _move_parked(ctx: Context, store: FailedJobProvider) -> None:
    """Bring in failures that workers parked while the database was down, so they can be seen and retried."""
    from ..failed.parking import SPOOL_PATH, Parking, ParkingProvider, RedisParking, SpoolParking

    if _table(store) is None:
        return
    parkings: list[Parking] = [SpoolParking(ctx.config.root / SPOOL_PATH)]
    for conn in ctx.config.connections.values():
        if conn.driver == "redis":
            from ..drivers.redis import connect

            try:
                client = connect(conn.url)
            except OxideError:
                # No redis-py (or a bad URL): no worker of ours can have parked there. Listing goes on.
                continue
            parkings.append(RedisParking.of_connection(conn, client))
    moved = ParkingProvider(store, parkings).flush_parked(force=True)
    if moved:
        # On stderr: stdout stays the listing alone (`--json` output is parsed by scripts).
        print(f"Moved {moved} parked failed job(s) into failed_jobs.", file=sys.stderr)


def _row_dict(row: StoredFailedJob) -> dict[str, Any]:
    return {
        "id": row.id,
        "uuid": row.uuid,
        "connection": row.connection,
        "queue": row.queue,
        "event_name": row.event_name,
        "listener_type": row.listener_type,
        "payload": row.payload,
        "exception": row.exception,
        "failed_at": row.failed_at.isoformat(),
    }


def _print_table(rows: Sequence[StoredFailedJob]) -> None:
    header = ("ID", "UUID", "CONNECTION", "QUEUE", "EVENT", "FAILED AT")
    lines = [header] + [
        (
            str(r.id),
            r.uuid,
            r.connection,
            r.queue,
            r.event_name or "(undecodable message)",
            r.failed_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def list_failed(ctx: Context, args: argparse.Namespace) -> int:
    """``queue:failed``: the table, or JSON."""
    store = _store(ctx)
    _move_parked(ctx, store)
    rows = store.all()
    if args.json:
        json.dump([_row_dict(r) for r in rows], sys.stdout, ensure_ascii=False, indent=2)
        print()
    elif not rows:
        print("No failed jobs." if _table(store) else f"No failed jobs: {NOT_STORED}.")
    else:
        _print_table(rows)
    return 0


def _parse_ids(values: Sequence[str]) -> list[int]:
    ids = []
    for value in values:
        try:
            ids.append(int(value))
        except ValueError:
            raise UsageError(f"queue:retry: {value!r} is not a failed-job id (ids are whole numbers)") from None
    return ids


def retry(ctx: Context, args: argparse.Namespace) -> int:
    """``queue:retry``: push back, then delete the row."""
    from ..drivers import check_queue_name
    from ..failed.retry import retry_jobs

    ids_given = [v for v in args.ids if v != "all"]
    every = args.all or "all" in args.ids
    chosen = sum([bool(ids_given), every, args.queue is not None])
    if chosen != 1:
        raise UsageError("queue:retry: give failed-job ids, or --all, or --queue NAME (exactly one of them)")
    ids = _parse_ids(ids_given)
    store = _store(ctx)
    _move_parked(ctx, store)
    missing: list[int] = []
    if every:
        rows = store.all()
    elif args.queue is not None:
        table = _table(store)
        rows = list(table.in_queue(args.queue)) if table else []
    else:
        rows = list(store.find(ids))
        found = {r.id for r in rows}
        # In the order given, so the error names them as the operator typed them.
        missing = list(dict.fromkeys(i for i in ids if i not in found))
        by_id = {r.id: r for r in rows}
        rows = [by_id[i] for i in dict.fromkeys(ids) if i in by_id]
    if not rows and not missing:
        print("No failed jobs to retry." if _table(store) else f"No failed jobs to retry: {NOT_STORED}.")
        return 0

    def push(connection: str, queue: str, body: str) -> None:
        ctx.app.driver(connection).push(check_queue_name(queue), body)

    def said(row: StoredFailedJob) -> None:
        print(f"Retried failed job {row.id} (uuid {row.uuid}) onto {row.connection}/{row.queue}.")

    report = retry_jobs(rows, store, push, said)
    for problem in report.problems:
        print(f"oxide: error: {problem}", file=sys.stderr)
    if report.retried:
        print(f"Retried {len(report.retried)} failed job(s).")
    if missing:
        raise RuntimeFailure(f"no failed job with id {', '.join(map(str, missing))}; see: oxide queue:failed")
    return 1 if report.problems else 0


def forget(ctx: Context, args: argparse.Namespace) -> int:
    """``queue:forget ID``."""
    if not _store(ctx).forget(args.id):
        raise RuntimeFailure(f"no failed job with id {args.id}; see: oxide queue:failed")
    print(f"Deleted failed job {args.id}.")
    return 0


def flush(ctx: Context, args: argparse.Namespace) -> int:
    """``queue:flush``: empty the table, say how many."""
    store = _store(ctx)
    deleted = store.flush()
    if not _table(store):
        print(f"No failed jobs to delete: {NOT_STORED}.")
    else:
        print(f"Deleted {deleted} failed job(s)." if deleted else "No failed jobs to delete.")
    return 0


def prune(ctx: Context, args: argparse.Namespace) -> int:
    """``queue:prune-failed --hours N``."""
    table = _table(_store(ctx))
    if table is None:
        print(f"No failed jobs to prune: {NOT_STORED}.")
        return 0
    deleted = table.prune(datetime.now(UTC) - timedelta(hours=args.hours))
    print(f"Deleted {deleted} failed job(s) that failed more than {args.hours} hour(s) ago.")
    return 0
