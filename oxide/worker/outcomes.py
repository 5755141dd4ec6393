"""One job, from the moment it is taken to its recorded outcome: the same for every kind of slot.

:meth:`Outcomes.prepare` reads a taken job (decode, listener lookup, tries
left); :meth:`Outcomes.finish` records what its run ended in. In between, a
slot runs the listener: in the worker's own thread (one slot), on a thread of
the pool, or as a task on the worker's event loop (``oxide.worker.threads``,
``oxide.worker.aio``). Both ends run in the worker's main thread, so the
driver is only ever used from there (and by the supervisor's heartbeats).

Outcomes: done (ack); retry (release, attempts raised, after the backoff);
failed (the failed-job record first, then ack, so a crash in between repeats
the record, which is idempotent on uuid, and never loses it). A message that
cannot be decoded fails at once: retrying cannot mend it.
"""

from __future__ import annotations

import logging
import random
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..attempts import AttemptPolicy, backoff_delay
from ..drivers import Delivery, Driver
from ..errors import JobEncodeError, JobTimedOut, MaxAttemptsExceeded, OxideError
from ..failed import FailedJob
from ..wire import Job, encode_value

if TYPE_CHECKING:
    from ..app import App, Registration
    from ..supervision import Watched

__all__ = ["Abandoned", "Failer", "Outcomes", "Running", "failed_job_for"]

log = logging.getLogger("oxide.worker")

Failer = Callable[[FailedJob], object]


class Abandoned(BaseException):
    """Raised into a listener that a stopping worker gives up on (a second signal, the stop timeout).

    Its job goes back to the front of its queue, not counted as an attempt. A
    ``BaseException``, like :class:`~oxide.errors.JobTimedOut`, so that a
    listener's ``except Exception`` does not swallow it.
    """


@dataclass(eq=False, slots=True)
class Running:
    """A taken job, read and ready to run: everything a slot needs, and what the outcome is recorded from."""

    delivery: Delivery
    job: Job
    registration: Registration
    event: Any
    policy: AttemptPolicy
    attempt: int
    began: float
    watched: Watched | None = None
    abandoned: bool = False  # given back at a hard stop: whatever its run ends in is ignored
    handle: Any = field(default=None, repr=False)  # the slot's own handle on the run (a guard, a future)


def _body_text(body: bytes) -> tuple[str, bool]:
    """The body as text, and whether that text is exactly the body."""
    try:
        return body.decode("utf-8"), True
    except UnicodeDecodeError:
        # Lone surrogates (surrogateescape) would be refused by a database; escapes keep every byte visible.
        return body.decode("utf-8", "backslashreplace"), False


def failed_job_for(connection: str, delivery: Delivery, job: Job | None, exc: BaseException) -> FailedJob:
    """The failure record for ``delivery``: ``job`` is None when the body could not be read as a job."""
    detail = "".join(traceback.format_exception(exc))
    payload: str | None = None
    if job is not None:
        try:
            payload = encode_value(job.payload)
        except JobEncodeError:
            payload = None  # cannot happen for a payload read from JSON; keep the body rather than lose it
    if payload is None:
        payload, exact = _body_text(delivery.body)
        if not exact:
            detail += "(the body is not valid UTF-8: bytes that are not are kept as \\xNN escapes)\n"
    return FailedJob(
        uuid=(job.uuid if job is not None and job.uuid else None) or str(uuid.uuid4()),
        connection=connection,
        queue=delivery.queue,
        event_name=job.event_name if job is not None else "",
        listener_type=job.listener_type if job is not None else "",
        payload=payload,
        exception=detail,
        failed_at=datetime.now(UTC),
    )


def _job_or_none(body: bytes) -> Job | None:
    try:
        return Job.from_json(body)
    except OxideError:
        return None


class Outcomes:
    """Reads taken jobs and records their outcomes, for one worker; counts what it saw."""

    def __init__(
        self,
        app: App,
        connection: str,
        driver: Driver,
        failer: Failer,
        policy: AttemptPolicy,
        *,
        clock: Callable[[], float],
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self._app = app
        self._connection = connection
        self._driver = driver
        self._failer = failer
        self._policy = policy
        self._policies: dict[int, tuple[Registration, AttemptPolicy]] = {}  # by listener: see prepare
        self._clock = clock
        self._jitter = jitter  # the backoff's random factor; tests pass a seeded one to be repeatable
        self.jobs_processed = 0  # taken and read, failed ones included
        self.jobs_failed = 0  # retried or recorded as failed
        # Acknowledgements wait here for the next take, which carries them in the same round trip
        # (drivers that can, and only while the worker runs); otherwise each is sent at once.
        self.deferring = False
        self.done: list[Delivery] = []
        # Told of every outcome: (queue, listener type, "done"/"retried"/"failed", seconds); the
        # operator view's counters (oxide.ops.presence). Called on the hot path: no I/O.
        self.observer: Callable[[str, str, str, float], object] | None = None

    def prepare(self, delivery: Delivery) -> Running | None:
        """Read a taken job; None when it cannot run (unreadable, tries used up): its failure is recorded."""
        self.jobs_processed += 1
        began = self._clock()
        try:
            job, registration, event = self._app.decode(delivery.body)
        except Exception as exc:
            self._failed(delivery, _job_or_none(delivery.body), exc, began)
            return None
        cached = self._policies.get(id(registration))
        if cached is not None and cached[0] is registration:
            policy = cached[1]
        else:  # worked out once per listener: the registration is kept beside it, so its id is never reused
            policy = self._policy.for_mode(registration.mode)
            self._policies[id(registration)] = (registration, policy)
        attempt = (job.attempts or 0) + delivery.expirations + 1
        if attempt > policy.tries:
            exhausted = MaxAttemptsExceeded(
                f"the job was taken {attempt - 1} time(s), its listener allows {policy.tries}; "
                f"{delivery.expirations} of those run(s) never finished (the worker stopped while running it)"
            )
            self._failed(delivery, job, exhausted, began)
            return None
        return Running(delivery, job, registration, event, policy, attempt, began)

    def finish(self, running: Running, exc: BaseException | None) -> bool:
        """Record how the run ended (``exc`` None: it returned); True if the job is done.

        A listener's own ``SystemExit`` or ``KeyboardInterrupt`` is recorded as a failure, then raised again.
        """
        if exc is None:
            if self.deferring:  # what ack() does first, here: this is once per job
                self.done.append(running.delivery)  # sent with the next take, in the same round trip
            else:
                self.ack(running.delivery)
            if self.observer is not None:
                self._observe(running.delivery, running.job, "done", running.began)
            if log.isEnabledFor(logging.INFO):  # the description costs more than the rest of a no-op job's bookkeeping
                log.info(
                    "%s outcome=done attempt=%d",
                    self._describe(running.delivery, running.job, running.began),
                    running.attempt,
                )
            return True
        # The outcome is recorded while the listener's exception is the one being handled, wherever
        # the listener ran, so that a failer (or a driver) may read it with sys.exception(). Raising
        # it again adds this frame to its traceback: the listener's own is put back at once.
        traceback_ = exc.__traceback__
        try:
            raise exc
        except (Exception, JobTimedOut):
            exc.__traceback__ = traceback_
            if running.attempt < running.policy.tries:
                self._retry(running, exc)
            else:
                self._failed(running.delivery, running.job, exc, running.began)
            return False
        except BaseException:
            exc.__traceback__ = traceback_
            self._failed(running.delivery, running.job, exc, running.began)
            raise  # a listener's SystemExit/KeyboardInterrupt: recorded first, then honoured

    def ack(self, delivery: Delivery) -> None:
        if self.deferring:
            self.done.append(delivery)  # sent with the next take, in the same round trip
            return
        try:
            held = self._driver.ack(delivery)
        except OxideError as exc:
            # The job ran; its reservation expires and it runs again: at least once, never lost.
            log.error("queue=%s could not acknowledge the job (%s): it will be taken again", delivery.queue, exc)
            return
        if not held:
            report_expired(delivery)

    def _observe(self, delivery: Delivery, job: Job | None, outcome: str, began: float) -> None:
        if self.observer is not None:
            self.observer(delivery.queue, job.listener_type if job is not None else "", outcome, self._clock() - began)

    def _retry(self, running: Running, exc: BaseException) -> None:
        self.jobs_failed += 1
        delivery, job, policy = running.delivery, running.job, running.policy
        self._observe(delivery, job, "retried", running.began)
        delay = backoff_delay(policy.backoff_secs, running.attempt, uniform=self._jitter)
        log.warning(
            "%s outcome=retry attempt=%d/%d delay_s=%.2f error=%s",
            self._describe(delivery, job, running.began),
            running.attempt,
            policy.tries,
            delay,
            error_text(exc),
        )
        try:
            released = self._driver.release(delivery, job.replace(attempts=running.attempt).to_json(), delay)
        except OxideError as release_exc:
            log.error(
                "queue=%s could not release the job for a retry (%s): it returns after its reservation expires",
                delivery.queue,
                release_exc,
            )
            return
        if not released:
            log.warning("queue=%s the job's reservation had expired: it is back in its queue already", delivery.queue)

    def _describe(self, delivery: Delivery, job: Job | None, began: float, job_uuid: str | None = None) -> str:
        parts = [f"queue={delivery.queue}"]
        if job is not None:
            parts += [f"event={job.event_name}", f"listener={job.listener_type}"]
            job_uuid = job_uuid or job.uuid
        if job_uuid:
            parts.append(f"uuid={job_uuid}")
        parts.append(f"duration_ms={(self._clock() - began) * 1000:.1f}")
        return " ".join(parts)

    def _failed(self, delivery: Delivery, job: Job | None, exc: BaseException, began: float) -> None:
        self.jobs_failed += 1
        self._observe(delivery, job, "failed", began)
        record = failed_job_for(self._connection, delivery, job, exc)
        # The record holds the traceback as text: the frames (and the listener's objects they hold) can go.
        traceback.clear_frames(exc.__traceback__)
        log.warning(
            "%s outcome=failed error=%s",
            self._describe(delivery, job, began, record.uuid),
            error_text(exc),
        )
        try:
            self._failer(record)
        except Exception as store_exc:
            # Not recorded anywhere: leave the job where it is. Reserved, it comes back after the
            # visibility timeout and is recorded then; without reservations this log line is the
            # only copy left, so it carries everything.
            log.error(
                "could not record failed job (%s: %s); %s; the whole record follows: "
                "uuid=%s connection=%s queue=%s event=%s listener=%s failed_at=%s payload=%s\nexception:\n%s",
                type(store_exc).__name__,
                store_exc,
                "it stays reserved and returns to its queue" if delivery.receipt is not None else "it is not in Redis",
                record.uuid,
                record.connection,
                record.queue,
                record.event_name,
                record.listener_type,
                record.failed_at.isoformat(),
                record.payload,
                record.exception,
            )
            return
        self.ack(delivery)


def error_text(exc: BaseException) -> str:
    """``Type: message``, made now: a log record holding the exception itself (a handler that queues
    records, a test's capture) would keep the listener's objects alive through it."""
    try:
        message = str(exc)
    except Exception:  # a __str__ that raises must not stop the outcome from being recorded
        message = f"(unprintable {type(exc).__name__})"
    return f"{type(exc).__name__}: {message}"


def report_expired(delivery: Delivery) -> None:
    log.warning(
        "queue=%s the job's reservation had expired before it was acknowledged: it may have run twice",
        delivery.queue,
    )
