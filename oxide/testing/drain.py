"""Run captured jobs through the real :class:`~oxide.worker.Worker`, in process, on a fake clock.

A drain starts a worker per faked connection over every queue that holds jobs,
with ``stop_when_empty``, and repeats until no queue holds anything: jobs that
listeners push meanwhile run too. When nothing is ready but a retry waits out
its backoff (or a reservation waits for its visibility deadline), the clock
jumps to that moment instead of sleeping. The worker's own code decides each
outcome (decode, retries, backoff, timeouts, failed-job records), so a test
sees what production would; the backoff's jitter comes from a seeded random
generator, so a drain repeats exactly.

The worker is watched through its driver and its failer, not changed: every
take, acknowledgement, release and failure record becomes a :class:`Run`.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..attempts import AttemptPolicy
from ..drivers import Delivery
from ..events import Event
from ..failed import FailedJob
from ..wire import Job
from ..worker import StopReason, Worker, WorkerOptions
from .drivers import DrainableDriver, installed
from .matching import JobFilter, format_table, plural

if TYPE_CHECKING:
    from ..app import App

__all__ = ["FailedJobLog", "JobReport", "Run", "WorkResult", "drain", "drain_drivers"]


class FailedJobLog(Protocol):
    """Where a drain also writes failure records: any failed-job provider, or anything with ``log``."""

    def log(self, job: FailedJob) -> None:
        """Record one failure; raising leaves the job reserved, as a worker does when its store is down."""


Outcome = Literal["done", "retry", "failed"]
Status = Literal["done", "failed", "unfinished"]


@dataclass(frozen=True)
class Run:
    """One run of one job by the worker, and how it ended."""

    connection: str
    queue: str
    uuid: str | None
    event_name: str  # "" when the message could not be read as a job
    listener_type: str
    payload: Any
    attempt: int  # 1 for the first run
    outcome: Outcome
    error: str | None = None  # "RuntimeError: boom" for a retry or failure
    exception: BaseException | None = field(default=None, repr=False, compare=False)
    delay_secs: float | None = None  # for a retry: how long the job waits before it is ready again
    failed_job: FailedJob | None = field(default=None, repr=False)  # for a failure: the record the worker wrote
    at: float = 0.0  # the fake clock's time when the run ended
    key: str = field(default="", repr=False)  # which job this is a run of (its uuid, or its body)


@dataclass(frozen=True)
class JobReport:
    """Every run of one job, in order, and where they ended."""

    runs: tuple[Run, ...]

    @property
    def first(self) -> Run:
        return self.runs[0]

    @property
    def connection(self) -> str:
        return self.first.connection

    @property
    def queue(self) -> str:
        return self.first.queue

    @property
    def uuid(self) -> str | None:
        return self.first.uuid

    @property
    def event_name(self) -> str:
        return self.first.event_name

    @property
    def listener_type(self) -> str:
        return self.first.listener_type

    @property
    def payload(self) -> Any:
        return self.first.payload

    @property
    def status(self) -> Status:
        """``done``, ``failed`` (recorded as a failed job), or ``unfinished`` (a retry still waits)."""
        last = self.runs[-1].outcome
        return "unfinished" if last == "retry" else last

    @property
    def attempts(self) -> int:
        """How many times the listener was run (or the message was taken)."""
        return len(self.runs)

    @property
    def retries(self) -> int:
        return sum(run.outcome == "retry" for run in self.runs)

    @property
    def error(self) -> str | None:
        """The last run's error, ``"Type: message"``; None if it succeeded."""
        return self.runs[-1].error

    @property
    def exception(self) -> BaseException | None:
        """The last run's exception object, when the worker still held it."""
        return self.runs[-1].exception

    @property
    def failed_job(self) -> FailedJob | None:
        return self.runs[-1].failed_job


@dataclass
class WorkResult:
    """What a drain ran: every run in order, grouped per job in :attr:`jobs`."""

    runs: list[Run] = field(default_factory=list)
    stop_reasons: list[StopReason] = field(default_factory=list)

    @property
    def jobs(self) -> list[JobReport]:
        """One report per job, in the order each first ran."""
        grouped: dict[str, list[Run]] = {}
        for run in self.runs:
            grouped.setdefault(run.key, []).append(run)
        return [JobReport(tuple(runs)) for runs in grouped.values()]

    @property
    def done(self) -> list[JobReport]:
        return [job for job in self.jobs if job.status == "done"]

    @property
    def failed(self) -> list[JobReport]:
        return [job for job in self.jobs if job.status == "failed"]

    @property
    def retried(self) -> list[JobReport]:
        """The jobs that were run more than once, whatever became of them."""
        return [job for job in self.jobs if job.retries]

    @property
    def unfinished(self) -> list[JobReport]:
        return [job for job in self.jobs if job.status == "unfinished"]

    @property
    def failed_jobs(self) -> list[FailedJob]:
        """The failed-job records the worker wrote, in order."""
        return [run.failed_job for run in self.runs if run.failed_job is not None]

    def of(
        self, listener: object = None, *, event: type[Event] | str | None = None, queue: str | None = None
    ) -> list[JobReport]:
        """The reports of one listener's (or event's, or queue's) jobs. ``listener`` may be an Event subclass."""
        flt = JobFilter.build(listener, event=event, queue=queue)
        return [
            job
            for job in self.jobs
            if flt.kind_matches(job.event_name, job.listener_type) and flt.place_matches(job.connection, job.queue)
        ]

    def assert_all_done(self) -> None:
        """Every job ran to success: else an AssertionError with the table and each failure's traceback."""
        bad = [job for job in self.jobs if job.status != "done"]
        if not bad:
            return
        details = []
        for job in bad:
            if job.failed_job is not None:
                details.append(f"--- {job.listener_type} ({job.uuid}):\n{job.failed_job.exception.rstrip()}")
            else:
                details.append(f"--- {job.listener_type} ({job.uuid}): {job.status}, last error: {job.error}")
        raise AssertionError(
            f"expected every job to be done, but {plural(len(bad), 'job')} {'is' if len(bad) == 1 else 'are'} not:\n"
            f"{self.table()}\n" + "\n".join(details)
        )

    def table(self) -> str:
        """Every job, one per line: where it ran, its runs and its status."""
        if not self.runs:
            return "  (no job ran)"
        rows = [
            [
                job.connection,
                job.queue,
                job.event_name or "?",
                job.listener_type or "?",
                ", ".join(run.outcome for run in job.runs),
                job.error or "",
            ]
            for job in self.jobs
        ]
        return format_table(("connection", "queue", "event", "listener", "runs", "last error"), rows)

    def __str__(self) -> str:
        jobs = self.jobs
        counts = ", ".join(
            f"{plural(len(group), 'job')} {name}"
            for name, group in (("done", self.done), ("failed", self.failed), ("unfinished", self.unfinished))
            if group
        )
        return f"{plural(len(jobs), 'job')} ran ({counts or 'none'}):\n{self.table()}"


def _error_text(exc: BaseException | None, record: FailedJob | None) -> str | None:
    if exc is not None:
        return f"{type(exc).__name__}: {exc}"
    if record is not None:
        lines = [line for line in record.exception.splitlines() if line.strip()]
        return lines[-1].strip() if lines else None
    return None


class _Watched:
    """The driver a drained worker uses: the fake, plus a record of every outcome and time that jumps."""

    consumable = True

    def __init__(self, inner: DrainableDriver, connection: str, result: WorkResult) -> None:
        self.inner = inner
        self.name = inner.name
        self.connection = connection
        self.result = result
        self._delivery: Delivery | None = None
        self._job: Job | None = None
        self._told = False  # the outcome of the job in hand is recorded

    # The worker's failer: the record is written where the test asked, and remembered.
    def failer(self, store: FailedJobLog | None) -> Callable[[FailedJob], None]:
        def fail(record: FailedJob) -> None:
            # Called inside the worker's ``except`` block, so the exception being handled is the job's.
            self._tell("failed", exception=sys.exception(), record=record)
            if store is not None:
                store.log(record)

        return fail

    def _tell(
        self,
        outcome: Outcome,
        *,
        exception: BaseException | None = None,
        record: FailedJob | None = None,
        delay_secs: float | None = None,
    ) -> None:
        delivery, job = self._delivery, self._job
        if delivery is None or self._told:
            return
        self._told = True
        if job is not None:
            # Retries carry the same job with its attempts raised: the uuid (else the job without them) names it.
            key = job.uuid or job.replace(attempts=None).to_json()
            event_name, listener_type, payload = job.event_name, job.listener_type, job.payload
            attempt = (job.attempts or 0) + delivery.expirations + 1
        else:
            key = delivery.body.decode("utf-8", "backslashreplace")
            event_name, listener_type, payload = "", "", key
            attempt = delivery.expirations + 1
        self.result.runs.append(
            Run(
                connection=self.connection,
                queue=delivery.queue,
                uuid=job.uuid if job is not None else (record.uuid if record is not None else None),
                event_name=event_name,
                listener_type=listener_type,
                payload=payload,
                attempt=attempt,
                outcome=outcome,
                error=_error_text(exception, record),
                exception=exception,
                delay_secs=delay_secs,
                failed_job=record,
                at=self.inner.clock(),
                key=key,
            )
        )

    def pop(self, queues: Sequence[str], timeout_secs: float) -> Delivery | None:
        while True:
            if self.inner.ready(queues):
                delivery = self.inner.pop(queues, timeout_secs)
                if delivery is not None:
                    self._delivery, self._told = delivery, False
                    try:
                        self._job = Job.from_json(delivery.body)
                    except Exception:
                        self._job = None
                    return delivery
            due = self.inner.next_due(queues)
            if due is None or due <= self.inner.clock():
                return None  # nothing waits for a later moment: the queues are empty
            self.inner.clock.advance_to(due)

    def ack(self, delivery: Delivery) -> bool:
        self._tell("done")  # after a failure the record was told already, so this is a success's ack
        return self.inner.ack(delivery)

    def release(self, delivery: Delivery, body: str, delay_secs: float) -> bool:
        # Called inside the worker's ``except`` block: the exception being handled is the listener's.
        self._tell("retry", exception=sys.exception(), delay_secs=delay_secs)
        return self.inner.release(delivery, body, delay_secs)

    def push(self, queue: str, body: str) -> None:
        self.inner.push(queue, body)

    def push_many(self, queue: str, bodies: Sequence[str]) -> None:
        self.inner.push_many(queue, bodies)

    def later(self, queue: str, bodies: Sequence[str], delay_secs: float) -> None:
        self.inner.later(queue, bodies, delay_secs)

    def extend(self, delivery: Delivery) -> bool:
        return self.inner.extend(delivery)

    def give_back(self, deliveries: Sequence[Delivery]) -> int:
        return self.inner.give_back(deliveries)

    def size(self, queue: str) -> int:
        return self.inner.size(queue)

    def close(self) -> None:
        pass  # the fake outlives the worker: the test reads it afterwards


def drain_drivers(
    app: App,
    drivers: Mapping[str, DrainableDriver],
    queues: Sequence[str] | None = None,
    *,
    failed: FailedJobLog | None = None,
    policy: AttemptPolicy | None = None,
    max_jobs: int = 1000,
    seed: int = 0,
) -> WorkResult:
    """Run the jobs of these faked connections until none is left; see :func:`drain`."""
    if type(max_jobs) is not int or max_jobs < 1:
        raise ValueError(f"max_jobs= expects a whole number >= 1, got {max_jobs!r}")
    result = WorkResult()
    jitter = random.Random(seed).uniform
    while True:
        worked = False
        for name, driver in drivers.items():
            names = list(queues) if queues is not None else driver.queue_names()
            if not names or not driver.has_jobs(names):
                continue
            left = max_jobs - len(result.runs)
            if left <= 0:
                raise AssertionError(
                    f"the queues still held jobs after {plural(max_jobs, 'run')} (max_jobs={max_jobs}): "
                    f"does a listener push a job for itself every time?\n{result.table()}"
                )
            watched = _Watched(driver, name, result)
            # No signal handlers: the test runner's own SIGINT handling stays as it is.
            options = WorkerOptions(
                stop_when_empty=True, max_jobs=left, handle_signals=False, policy=policy or AttemptPolicy()
            )
            worker = Worker(
                app,
                name,
                names,
                options,
                clock=driver.clock,
                sleep=driver.clock.sleep,
                failer=watched.failer(failed),
                driver=watched,
                jitter=jitter,
            )
            before = len(result.runs)
            result.stop_reasons.append(worker.run())
            if len(result.runs) == before:
                # Jobs are held but none can be taken, now or later: stop rather than loop forever.
                raise AssertionError(f"connection {name!r} holds jobs in {names} that no worker can take")
            worked = True
        if not worked:
            return result


def drain(
    app: App,
    connection: str | None = None,
    queues: Sequence[str] | None = None,
    *,
    failed: FailedJobLog | None = None,
    policy: AttemptPolicy | None = None,
    max_jobs: int = 1000,
    seed: int = 0,
) -> WorkResult:
    """Run every job waiting on ``app``'s faked connections through the real worker, until none is left.

    ``connection``: only that one (default: every connection a :class:`QueueFake`
    or :class:`RedisFake` holds). ``queues``: only these, in priority order
    (default: every queue that holds jobs, in the order each was first used).
    ``failed``: a failed-job store the worker also writes to (the records are in
    the result either way). ``policy``: the worker's defaults for listeners that
    set no tries/backoff/timeout of their own (``queue:work --tries/--backoff/--timeout``).
    ``max_jobs``: give up with an AssertionError after this many runs, in case
    listeners keep pushing jobs. ``seed``: of the backoff jitter.
    """
    fakes = installed(app)
    if connection is not None:
        name = app.config.connection(connection).name
        if name not in fakes:
            raise ValueError(
                f"connection {name!r} is not faked: drain runs the jobs of a QueueFake or RedisFake "
                f"(faked now: {', '.join(fakes) or 'none'})"
            )
        fakes = {name: fakes[name]}
    elif not fakes:
        raise ValueError("nothing to drain: no connection of this app is faked (start a QueueFake or RedisFake first)")
    return drain_drivers(app, fakes, queues, failed=failed, policy=policy, max_jobs=max_jobs, seed=seed)
