"""The worker: take jobs from a connection's queues in priority order and run their listeners.

One cycle: take (one blocking ``pop`` over every queue, highest priority first)
→ decode the job → find its listener among the application's registrations
(never by importing a name read from the wire) → decode the event → run the
listener → log the outcome → decide, in :meth:`Worker.stop_reason`, whether to
go on.

Signals. ``SIGINT`` and ``SIGTERM`` handlers only set a flag. Python retries a
system call that a signal interrupted once the handler has returned (PEP 475),
so a handler that neither raises nor does I/O cannot cut a ``BRPOP`` reply in
half: the take completes, and a job it brought is run and its outcome recorded
before the worker stops. That is why the default ``SIGINT`` handler, which
raises ``KeyboardInterrupt`` wherever the main thread happens to be (possibly
in the middle of reading the reply that holds the only copy of a job), is
replaced for the whole of :meth:`Worker.run`. Each take waits at most a second,
so an idle worker notices the flag within about a second.

Failures. A message that cannot be decoded, names no registered listener, or
whose listener raises becomes a :class:`~oxide.failed.FailedJob` handed to the
failer. If the failer raises too, the whole record is logged at error level so
the job is never dropped silently; the worker goes on either way.
"""

from __future__ import annotations

import enum
import logging
import random
import signal
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

from .attempts import AttemptPolicy, backoff_delay
from .drivers import BatchTaker, Delivery, Driver, check_queue_name
from .errors import ConnectionUnavailable, JobEncodeError, JobTimedOut, MaxAttemptsExceeded, OxideError, QueueNameError
from .events import run_handler
from .failed import FailedJob, FailedJobProvider, provider_for
from .supervision import Supervisor, soft_timeout
from .wire import Job, encode_value

if TYPE_CHECKING:
    from .app import App

__all__ = ["StopReason", "Worker", "WorkerOptions", "failed_job_for"]

log = logging.getLogger("oxide.worker")

# The longest single blocking take: bounds how long an idle worker takes to notice a signal.
MAX_TAKE_WAIT_SECS = 1.0
# Backoff sleeps are cut into slices this long so a signal stops a worker that is waiting to reconnect.
PAUSE_SLICE_SECS = 0.1

Failer = Callable[[FailedJob], object]


class StopReason(enum.Enum):
    """Why :meth:`Worker.run` returned."""

    INTERRUPTED = "interrupted"  # SIGINT/SIGTERM, or stop() called
    ONCE = "once"  # --once, and the one job has run
    MAX_JOBS = "max_jobs"  # --max-jobs reached
    MAX_TIME = "max_time"  # --max-time elapsed
    QUEUE_EMPTY = "queue_empty"  # --stop-when-empty found nothing; or --once waited block_timeout_secs for nothing
    NOTHING_TO_CONSUME = "nothing_to_consume"  # the connection's driver keeps no jobs (sync)


@dataclass(frozen=True)
class WorkerOptions:
    """When a worker stops on its own, and how it waits to reconnect. ``None`` means no limit."""

    once: bool = False
    stop_when_empty: bool = False
    max_jobs: int | None = None
    max_time_secs: float | None = None
    reconnect_initial_secs: float = 0.1
    reconnect_max_secs: float = 5.0
    handle_signals: bool = True  # install SIGINT/SIGTERM handlers (possible only in the main thread)
    # Jobs reserved per take (--prefetch); None: the connection's ``prefetch`` setting. See docs/performance.md.
    prefetch: int | None = None
    # Defaults for listeners that set none of their own (Mode.queue(...).tries/backoff/timeout).
    policy: AttemptPolicy = field(default_factory=AttemptPolicy)

    def __post_init__(self) -> None:
        if self.max_jobs is not None and (type(self.max_jobs) is not int or self.max_jobs < 1):
            raise OxideError(f"WorkerOptions.max_jobs: expected a whole number >= 1 or None, got {self.max_jobs!r}")
        if self.max_time_secs is not None and not 0 < self.max_time_secs < float("inf"):
            raise OxideError(f"WorkerOptions.max_time_secs: expected seconds > 0 or None, got {self.max_time_secs!r}")
        if self.prefetch is not None and (type(self.prefetch) is not int or self.prefetch < 1):
            raise OxideError(f"WorkerOptions.prefetch: expected a whole number >= 1 or None, got {self.prefetch!r}")
        if not 0 < self.reconnect_initial_secs <= self.reconnect_max_secs:
            raise OxideError("WorkerOptions: expected 0 < reconnect_initial_secs <= reconnect_max_secs")
        policy = self.policy
        if type(policy.tries) is not int or policy.tries < 1:
            raise OxideError(f"WorkerOptions.policy.tries: expected a whole number >= 1, got {policy.tries!r}")
        if not 0 <= policy.backoff_secs < float("inf"):
            raise OxideError(f"WorkerOptions.policy.backoff_secs: expected seconds >= 0, got {policy.backoff_secs!r}")
        if policy.timeout_secs is not None and not 0 < policy.timeout_secs < float("inf"):
            raise OxideError(f"WorkerOptions.policy.timeout_secs: expected seconds > 0, got {policy.timeout_secs!r}")


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


class Worker:
    """Takes jobs from ``queues`` of one connection, in that priority order, and runs them."""

    def __init__(
        self,
        app: App,
        connection: str | None,
        queues: Sequence[str] | None,
        options: WorkerOptions | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
        failer: Failer | None = None,
        driver: Driver | None = None,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.app = app
        self.connection = app.config.connection(connection)
        names = [self.connection.queue] if queues is None else list(queues)
        if not names:
            raise QueueNameError("a worker needs at least one queue name")
        for name in names:
            check_queue_name(name)
            if names.count(name) > 1:
                raise QueueNameError(f"queue {name!r} is listed twice: {','.join(names)}")
        self.queues: tuple[str, ...] = tuple(names)
        self.options = options if options is not None else WorkerOptions()
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter  # the backoff's random factor; tests pass a seeded one to be repeatable
        # The provider also moves failures parked while the database was down into failed_jobs: the
        # worker asks it to whenever it finds its queues empty (cheap when nothing is parked).
        self._provider: FailedJobProvider | None = None
        if failer is None:
            self._provider = provider_for(app.config, self.connection.name)
            failer = self._provider.log
        self._failer: Failer = failer
        self._driver = driver if driver is not None else app.driver(self.connection.name)
        self._take_wait_secs = min(self.connection.block_timeout_secs, MAX_TAKE_WAIT_SECS)
        # Written by the signal handler: a plain attribute store, nothing else.
        self._stop_signal: int | None = None
        self._stop_requested = False
        self.jobs_processed = 0
        self.jobs_failed = 0
        self._started = clock()
        self._empty_takes = 0  # consecutive takes that came back empty
        self._empty_wait_secs = 0.0  # time spent in those takes
        self._reconnect_attempts = 0
        self._supervisor = Supervisor(self._driver, self.connection.visibility_timeout_secs, clock=clock)
        # The hot path (docs/performance.md): a driver that can acknowledge the finished job in the
        # same round trip as the next take gets its acknowledgements deferred to that take, and may
        # hand over several jobs per take (prefetch); jobs taken but not started are kept in _held.
        self._taker = self._driver if isinstance(self._driver, BatchTaker) else None
        self._prefetch = self.options.prefetch or self.connection.prefetch
        self._deferring = False  # acknowledgements wait for the next take (only inside run())
        self._done: list[Delivery] = []  # finished jobs whose acknowledgement rides on the next take
        self._held: deque[tuple[Delivery, float]] = deque()  # taken, not started: (delivery, when taken)
        visibility = self.connection.visibility_timeout_secs
        self._refresh_after_secs = visibility / 3 if visibility > 0 else None

    # -- stopping --------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the worker to stop once the job in hand is done; safe from a signal handler or another thread."""
        self._stop_requested = True

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only flags: logging here could deadlock on the logging lock held by the interrupted code,
        # and raising could abandon a job whose reply is half read.
        self._stop_signal = signum
        self._stop_requested = True

    def stop_reason(self) -> StopReason | None:
        """The one place that decides whether the worker stops, checked between jobs; None: go on."""
        options = self.options
        elapsed = self._clock() - self._started
        conditions = (
            (StopReason.INTERRUPTED, self._stop_requested),
            (StopReason.ONCE, options.once and self.jobs_processed >= 1),
            (StopReason.MAX_JOBS, options.max_jobs is not None and self.jobs_processed >= options.max_jobs),
            (StopReason.MAX_TIME, options.max_time_secs is not None and elapsed >= options.max_time_secs),
            (
                StopReason.QUEUE_EMPTY,
                (options.stop_when_empty and self._empty_takes > 0)
                or (options.once and self._empty_wait_secs >= self.connection.block_timeout_secs),
            ),
        )
        return next((reason for reason, reached in conditions if reached), None)

    # -- the loop --------------------------------------------------------------------------------

    def run(self) -> StopReason:
        """Work until a stop condition holds; returns which one."""
        name = self.connection.name
        if not self._driver.consumable:
            log.info("connection=%s driver=%s keeps no jobs: nothing to consume", name, self.connection.driver)
            return StopReason.NOTHING_TO_CONSUME
        previous = self._install_signal_handlers()
        self._deferring = self._taker is not None
        try:
            self._started = self._clock()
            log.info("worker started: connection=%s queues=%s", name, ",".join(self.queues))
            while (reason := self.stop_reason()) is None:
                self._cycle()
            why = reason.value
            if reason is StopReason.INTERRUPTED and self._stop_signal is not None:
                why = f"{why} ({signal.Signals(self._stop_signal).name})"
            log.info(
                "worker stopped: reason=%s connection=%s jobs=%d failed=%d",
                why,
                name,
                self.jobs_processed,
                self.jobs_failed,
            )
            return reason
        finally:
            self._deferring = False
            self._settle()
            self._supervisor.close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _install_signal_handlers(self) -> dict[int, Any]:
        if not self.options.handle_signals or threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[int, Any] = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    def _cycle(self) -> None:
        if self._held:
            held = self._next_held()
            if held is not None:
                self.process(held)
            return
        began = self._clock()
        try:
            delivery = self._take()
        except ConnectionUnavailable as exc:
            self._wait_to_reconnect(f"unavailable: {exc}")
            return
        except Exception as exc:  # a server-side error (e.g. WRONGTYPE): log it, keep the worker alive
            log.error("take failed on connection=%s", self.connection.name, exc_info=exc)
            self._wait_to_reconnect(f"take failed: {type(exc).__name__}: {exc}")
            return
        if self._reconnect_attempts:
            log.info("connection=%s is back after %d failed attempts", self.connection.name, self._reconnect_attempts)
            self._reconnect_attempts = 0
        if delivery is None:
            self._empty_takes += 1
            self._empty_wait_secs += self._clock() - began
            if self._provider is not None:
                self._provider.flush_parked()
            return
        self._empty_takes = 0
        self._empty_wait_secs = 0.0
        self.process(delivery)

    def _take(self) -> Delivery | None:
        """One job: taken alone (``pop``), or with the finished jobs' acknowledgements and up to prefetch - 1 more."""
        if self._taker is None:
            return self._driver.pop(self.queues, self._take_wait_secs)
        limit = self._prefetch
        if self.options.once:
            limit = 1
        elif self.options.max_jobs is not None:
            limit = max(1, min(limit, self.options.max_jobs - self.jobs_processed))
        done, self._done = self._done, []
        try:
            held, taken = self._taker.take(self.queues, self._take_wait_secs, limit=limit, done=done)
        except BaseException:
            # The reply may be lost after the server acted: acknowledge again next time (a second
            # acknowledgement of the same job finds nothing and is reported as expired, harmlessly).
            self._done[:0] = done
            raise
        self._report_acks(done, held)
        if not taken:
            return None
        now = self._clock()
        self._held.extend((delivery, now) for delivery in taken[1:])
        return taken[0]

    def _next_held(self) -> Delivery | None:
        """The next prefetched job, its reservation refreshed if it has waited long; None if it expired meanwhile."""
        delivery, taken_at = self._held.popleft()
        if self._refresh_after_secs is None or self._clock() - taken_at < self._refresh_after_secs:
            return delivery
        try:
            still_held = self._driver.extend(delivery)
        except OxideError as exc:
            log.warning(
                "queue=%s could not extend a prefetched job's reservation (%s): running it", delivery.queue, exc
            )
            return delivery
        if still_held:
            return delivery
        log.warning(
            "queue=%s a prefetched job's reservation expired before it started: it is back in its queue, "
            "not run here (lower --prefetch, or raise visibility_timeout_secs)",
            delivery.queue,
        )
        return None

    def _report_acks(self, done: Sequence[Delivery], held: Sequence[bool]) -> None:
        for delivery, still_held in zip(done, held, strict=True):
            if not still_held:
                log.warning(
                    "queue=%s the job's reservation had expired before it was acknowledged: it may have run twice",
                    delivery.queue,
                )

    def _settle(self) -> None:
        """On the way out: acknowledge the finished jobs and give back the prefetched ones never started."""
        if self._taker is None or not (self._done or self._held):
            return
        unstarted = [delivery for delivery, _taken_at in self._held]
        self._held.clear()
        done, self._done = self._done, []
        try:
            if unstarted:
                back = self._taker.give_back(unstarted)
                log.info("gave back %d prefetched job(s) not started, to the front of their queues", back)
            if done:
                held, _ = self._taker.take(self.queues, 0, limit=0, done=done)
                self._report_acks(done, held)
        except Exception as exc:
            log.error(
                "could not settle %d finished and %d unstarted job(s) (%s): they return to their queues after "
                "the visibility timeout",
                len(done),
                len(unstarted),
                exc,
            )

    def _wait_to_reconnect(self, why: str) -> None:
        options = self.options
        delay = min(options.reconnect_initial_secs * 2**self._reconnect_attempts, options.reconnect_max_secs)
        self._reconnect_attempts += 1
        log.warning(
            "connection=%s %s; retrying in %.1fs (attempt %d)",
            self.connection.name,
            why,
            delay,
            self._reconnect_attempts,
        )
        try:
            self._driver.close()  # drop dead sockets: the next take opens a fresh connection
        except Exception as exc:
            log.debug("closing connection=%s failed: %s", self.connection.name, exc)
        deadline = self._clock() + delay
        while self.stop_reason() is None and (left := deadline - self._clock()) > 0:
            self._sleep(min(left, PAUSE_SLICE_SECS))

    # -- one job ---------------------------------------------------------------------------------

    def process(self, delivery: Delivery) -> bool:
        """Run one taken job and record its outcome; True if it succeeded. Never raises for a bad job.

        Outcomes: done (ack); retry (release, attempts raised, after the backoff);
        failed (the failed-job record first, then ack, so a crash in between
        repeats the record, which is idempotent on uuid, and never loses it).
        A message that cannot be decoded fails at once: retrying cannot mend it.
        """
        self.jobs_processed += 1
        began = self._clock()
        try:
            job, registration, event = self.app.decode(delivery.body)
        except Exception as exc:
            self._failed(delivery, _job_or_none(delivery.body), exc, began)
            return False
        policy = self.options.policy.for_mode(registration.mode)
        attempt = (job.attempts or 0) + delivery.expirations + 1
        if attempt > policy.tries:
            exhausted = MaxAttemptsExceeded(
                f"the job was taken {attempt - 1} time(s), its listener allows {policy.tries}; "
                f"{delivery.expirations} of those run(s) never finished (the worker stopped while running it)"
            )
            self._failed(delivery, job, exhausted, began)
            return False
        try:
            with (
                self._supervisor.watching(delivery, policy.timeout_secs),
                soft_timeout(None if registration.is_async else policy.timeout_secs),
            ):
                run_handler(registration.make_listener(), event, policy.timeout_secs)
        except (Exception, JobTimedOut) as exc:
            if attempt < policy.tries:
                self._retry(delivery, job, attempt, policy, exc=exc, began=began)
            else:
                self._failed(delivery, job, exc, began)
            return False
        except BaseException as exc:
            self._failed(delivery, job, exc, began)
            raise  # a listener's SystemExit/KeyboardInterrupt: recorded first, then honoured
        self._ack(delivery)
        if log.isEnabledFor(logging.INFO):  # the description costs more than the rest of a no-op job's bookkeeping
            log.info("%s outcome=done attempt=%d", self._describe(delivery, job, job.uuid, began), attempt)
        return True

    def _ack(self, delivery: Delivery) -> None:
        if self._deferring:
            self._done.append(delivery)  # sent with the next take, in the same round trip
            return
        try:
            held = self._driver.ack(delivery)
        except OxideError as exc:
            # The job ran; its reservation expires and it runs again: at least once, never lost.
            log.error("queue=%s could not acknowledge the job (%s): it will be taken again", delivery.queue, exc)
            return
        if not held:
            log.warning(
                "queue=%s the job's reservation had expired before it was acknowledged: it may have run twice",
                delivery.queue,
            )

    def _retry(
        self, delivery: Delivery, job: Job, attempt: int, policy: AttemptPolicy, *, exc: BaseException, began: float
    ) -> None:
        self.jobs_failed += 1
        delay = backoff_delay(policy.backoff_secs, attempt, uniform=self._jitter)
        log.warning(
            "%s outcome=retry attempt=%d/%d delay_s=%.2f error=%s: %s",
            self._describe(delivery, job, job.uuid, began),
            attempt,
            policy.tries,
            delay,
            type(exc).__name__,
            exc,
        )
        try:
            released = self._driver.release(delivery, job.replace(attempts=attempt).to_json(), delay)
        except OxideError as release_exc:
            log.error(
                "queue=%s could not release the job for a retry (%s): it returns after its reservation expires",
                delivery.queue,
                release_exc,
            )
            return
        if not released:
            log.warning("queue=%s the job's reservation had expired: it is back in its queue already", delivery.queue)

    def _describe(self, delivery: Delivery, job: Job | None, job_uuid: str | None, began: float) -> str:
        parts = [f"queue={delivery.queue}"]
        if job is not None:
            parts += [f"event={job.event_name}", f"listener={job.listener_type}"]
        if job_uuid:
            parts.append(f"uuid={job_uuid}")
        parts.append(f"duration_ms={(self._clock() - began) * 1000:.1f}")
        return " ".join(parts)

    def _failed(self, delivery: Delivery, job: Job | None, exc: BaseException, began: float) -> None:
        self.jobs_failed += 1
        record = failed_job_for(self.connection.name, delivery, job, exc)
        log.warning(
            "%s outcome=failed error=%s: %s",
            self._describe(delivery, job, record.uuid, began),
            type(exc).__name__,
            exc,
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
        self._ack(delivery)
