"""The worker: take jobs from a connection's queues in priority order and run their listeners.

One cycle: take (one blocking take over every queue, highest priority first)
→ decode the job → find its listener among the application's registrations
(never by importing a name read from the wire) → decode the event → run the
listener → log the outcome → decide, in :meth:`Worker.stop_reason`, whether to
go on. With ``concurrency`` above 1 up to that many jobs run at once, and a take
asks only for as many jobs as there are free slots.

The parts: :mod:`.loop` (the take loop, its stop table and signals),
:mod:`.outcomes` (one job from taken to recorded, the same for every slot),
:mod:`.threads` and :mod:`.aio` (the slots), :mod:`.pool` (``--processes``).

Failures. A message that cannot be decoded, names no registered listener, or
whose listener raises becomes a :class:`~oxide.failed.FailedJob` handed to the
failer. If the failer raises too, the whole record is logged at error level so
the job is never dropped silently; the worker goes on either way.
"""

from .loop import Worker
from .options import StopReason, WorkerOptions
from .outcomes import failed_job_for

__all__ = ["StopReason", "Worker", "WorkerOptions", "failed_job_for"]
