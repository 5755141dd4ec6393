"""For custom producers: ``push(connection, queue, job)`` and the :class:`Job` type.

These use the current application (the most recently created :class:`~oxide.App`,
or one reading ``./config``), so a script needs no setup beyond its config files.
"""

from __future__ import annotations

from collections.abc import Sequence

from .app import current_app
from .drivers import check_queue_name
from .wire import Job

__all__ = ["Job", "check_queue_name", "push", "push_many"]


def push(connection: str | None, queue: str | None, job: Job, *, delay: float = 0.0) -> None:
    """Push ``job`` onto ``queue`` of ``connection`` (``None``: the configured default), ready after ``delay`` s."""
    current_app().push(connection, queue, job, delay=delay)


def push_many(connection: str | None, queue: str | None, jobs: Sequence[Job], *, delay: float = 0.0) -> None:
    """Push several jobs in order, pipelined where the driver can, ready after ``delay`` seconds."""
    current_app().push_many(connection, queue, jobs, delay=delay)
