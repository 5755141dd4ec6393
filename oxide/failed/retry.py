"""Retrying failed jobs: push the original job back, then delete its row.

The order is the guarantee: a crash between the push and the delete leaves the
row and a pushed job (the retry may run twice), never neither. A push that fails
keeps the row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..errors import ConnectionUnavailable, OxideError
from ..wire import Job
from . import FailedJobProvider, StoredFailedJob

__all__ = ["Push", "RetryReport", "retry_body", "retry_jobs"]

Push = Callable[[str, str, str], None]
"""Pushes one encoded job: ``(connection, queue, body)``."""


def retry_body(row: StoredFailedJob) -> str:
    """The job to push again: the original with attempts reset, or an undecodable message's raw body as it came."""
    if not row.event_name:
        return row.payload
    try:
        payload = json.loads(row.payload)
    except ValueError:
        raise OxideError(f"failed job {row.id}: its payload is not valid JSON, so the job cannot be rebuilt") from None
    # attempts is left unset: the job starts again from its first attempt.
    return Job(row.event_name, row.listener_type, payload, uuid=row.uuid or None).to_json()


@dataclass
class RetryReport:
    """What a retry did: the rows pushed back (and deleted), and one line per problem."""

    retried: list[StoredFailedJob] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def retry_jobs(
    rows: Iterable[StoredFailedJob],
    provider: FailedJobProvider,
    push: Push,
    on_retried: Callable[[StoredFailedJob], None] | None = None,
) -> RetryReport:
    """Push each row's job onto its original connection and queue, then delete the row."""
    report = RetryReport()
    unavailable: set[str] = set()  # connections whose push failed to connect
    for row in rows:
        where = f"{row.connection}/{row.queue}"
        if row.connection in unavailable:
            report.problems.append(f"failed job {row.id} not retried, row kept: {row.connection!r} is unreachable")
            continue
        try:
            body = retry_body(row)
            push(row.connection, row.queue, body)
        except ConnectionUnavailable as exc:
            # One unreachable server fails every row bound for it: say so once per row, try it once.
            unavailable.add(row.connection)
            report.problems.append(f"failed job {row.id} not retried, row kept: could not push onto {where}: {exc}")
            continue
        # The sync connection runs the listener inside push, so any exception can arrive here; each one
        # means the job was not taken, and the row must stay.
        except Exception as exc:
            report.problems.append(f"failed job {row.id} not retried, row kept: could not push onto {where}: {exc}")
            continue
        try:
            provider.forget(row.id)
        except OxideError as exc:
            report.problems.append(
                f"failed job {row.id} was pushed onto {where} but its row could not be deleted ({exc}); "
                f"once the database answers, delete it with: oxide queue:forget {row.id}"
            )
            # The database is gone: pushing more would only leave more rows to clean up by hand.
            report.problems.append("stopped: the remaining failed jobs were not retried")
            break
        report.retried.append(row)
        if on_retried is not None:
            on_retried(row)
    return report
