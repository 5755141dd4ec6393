"""The worker's take loop: take jobs in priority order while a slot is free, and stop when told.

One turn: record the outcomes of the jobs that ended → if a slot is free, take
(one blocking call over every queue, highest priority first) at most as many
jobs as there are free slots, and start them → decide, in
:meth:`Worker.stop_reason`, whether to go on. Taking only for free slots is what
keeps strict priority with several slots: a job pushed to a higher queue is the
next one taken the moment a slot frees (``--prefetch`` takes more, on request).

Slots. With one slot (the default) the listener runs in this thread, between
two takes, exactly as a worker without slots would: ``SIGALRM`` interrupts it
at its timeout. With ``concurrency`` N > 1 this thread only takes, acknowledges
and records outcomes (:mod:`oxide.worker.outcomes`, the same code for every
slot); plain listeners run on N threads (:mod:`oxide.worker.threads`) and
``async def`` ones as tasks on one event loop (:mod:`oxide.worker.aio`), N jobs
at most in all. One supervisor thread keeps every job's reservation alive.

Signals. ``SIGINT`` and ``SIGTERM`` handlers only set flags (and wake the loop
through a queue whose ``put`` is safe in a signal handler). Python retries a
system call that a signal interrupted once the handler has returned (PEP 475),
so a handler that neither raises nor does I/O cannot cut a ``BRPOP`` reply in
half: the take completes, and a job it brought is run and its outcome recorded
before the worker stops. The first signal stops the taking; the jobs in flight
finish (heartbeats go on), prefetched jobs never started go back to the front
of their queues, and the worker exits 0. A second signal, or the stop timeout,
gives back what is still running — interrupting it — so that a job is never
lost and never waits out the visibility timeout. The one place a handler
raises is that second signal while the listener runs in this very thread.
"""

from __future__ import annotations

import logging
import queue
import random
import signal
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

from ..drivers import Delivery, Driver, check_queue_name
from ..errors import ConnectionUnavailable, QueueNameError
from ..events import run_handler
from ..failed import FailedJobProvider, provider_for
from ..supervision import EXIT_STUCK, Supervisor, Watched, exit_now, soft_timeout
from .aio import LoopSlots
from .liveness import Liveness
from .options import StopReason, WorkerOptions
from .outcomes import Abandoned, Failer, Outcomes, Running
from .takes import Takes
from .threads import ThreadSlots

if TYPE_CHECKING:
    from ..app import App
    from ..ops.presence import InHand, Presence

__all__ = ["Worker"]

log = logging.getLogger("oxide.worker")

# The longest single blocking take: bounds how long an idle worker takes to notice a signal.
MAX_TAKE_WAIT_SECS = 1.0
# While jobs are in flight a take waits at most this long, so that their outcomes are recorded
# (and the next take carries their acknowledgements) soon after they end.
BUSY_TAKE_WAIT_SECS = 0.05
# The longest wait for a slot to free; a signal or a stuck job cuts it short.
SLOT_WAIT_SECS = 1.0
# Backoff sleeps are cut into slices this long so a signal stops a worker that is waiting to reconnect.
PAUSE_SLICE_SECS = 0.1
_WAKE = object()  # put on the completions queue to cut a wait short


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
        presence: Presence | None = None,
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
        if self.connection.driver == "redis":  # on a cluster, one take's queues must share a slot
            from ..drivers.keyspace import keyspace_of

            keyspace_of(self.connection.prefix, self.connection.url).check_one_slot(names, self.connection.name)
        self.options = options = options if options is not None else WorkerOptions()
        self.concurrency = options.concurrency or self.connection.concurrency
        self.stop_timeout_secs = (
            options.stop_timeout_secs if options.stop_timeout_secs is not None else self.connection.stop_timeout_secs
        )
        self._clock = clock
        self._sleep = sleep
        # The provider also moves failures parked while the database was down into failed_jobs: the
        # worker asks it to whenever it finds its queues empty (cheap when nothing is parked).
        self._provider: FailedJobProvider | None = None
        if failer is None:
            self._provider = provider_for(app.config, self.connection.name)
            failer = self._provider.log
        self._driver = driver if driver is not None else app.driver(self.connection.name)
        self._outcomes = Outcomes(
            app, self.connection.name, self._driver, failer, options.policy, clock=clock, jitter=jitter
        )
        self._take_wait_secs = min(self.connection.block_timeout_secs, MAX_TAKE_WAIT_SECS)
        # Written by the signal handler: plain attribute stores, nothing else.
        self._stop_signal: int | None = None
        self._stop_requested = False
        self._hard_stop = False
        self._stop_deadline: float | None = None
        self._listener_in_main = False  # a listener runs in this thread now (one slot)
        self._handlers_installed = False
        self._started = clock()
        self._empty_takes = 0  # consecutive takes that came back empty
        self._empty_wait_secs = 0.0  # time spent in those takes
        self._reconnect_attempts = 0
        inline = self.concurrency == 1
        self._supervisor = Supervisor(
            self._driver,
            self.connection.visibility_timeout_secs,
            clock=clock,
            on_stuck=None if inline else self._on_stuck,
        )
        self._supervisor.on_look = self._look
        self._liveness = Liveness(self.queues, presence, options.health_file, self._in_hand, clock=clock)
        if presence is not None:
            self._outcomes.observer = presence.record
        self._inline_running: Running | None = None  # the job a listener runs for in this thread
        self._stuck: Watched | None = None
        # Several slots: jobs in flight by id, the queue their outcomes come back on, and the slots.
        self._inline = inline
        self._busy: dict[int, Running] = {}
        self._completions: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads = ThreadSlots(self.concurrency, self._completions)
        self._loop_slots = LoopSlots(self._completions)
        self._takes = Takes(
            self._driver,
            self.queues,
            options,
            self._outcomes,
            prefetch=options.prefetch or self.connection.prefetch,
            visibility_timeout_secs=self.connection.visibility_timeout_secs,
            clock=clock,
            sleep=sleep,
        )

    @property
    def jobs_processed(self) -> int:
        """Jobs taken and read so far (failed ones included)."""
        return self._outcomes.jobs_processed

    @property
    def jobs_failed(self) -> int:
        """Jobs that were retried or recorded as failed."""
        return self._outcomes.jobs_failed

    # -- stopping --------------------------------------------------------------------------------

    def stop(self, *, now: bool = False) -> None:
        """Stop taking jobs; those in flight finish first unless ``now`` (then they are given back).

        Safe from a signal handler or another thread.
        """
        self._request_stop(None, hard=now)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only flags: logging here could deadlock on the logging lock held by the interrupted code,
        # and raising could abandon a job whose reply is half read. The one raise is a second signal
        # while a listener runs in this thread: then the listener itself is what is cut short.
        self._request_stop(signum, hard=self._stop_requested)
        if self._hard_stop and self._listener_in_main:
            raise Abandoned()

    def _request_stop(self, signum: int | None, *, hard: bool) -> None:
        if self._stop_signal is None:
            self._stop_signal = signum
        if not self._stop_requested and self.stop_timeout_secs is not None:
            self._stop_deadline = self._clock() + self.stop_timeout_secs
        self._stop_requested = True
        self._hard_stop = self._hard_stop or hard
        self._completions.put(_WAKE)  # SimpleQueue.put is reentrant: safe in a signal handler

    def _on_stuck(self, watched: Watched) -> None:
        # The supervisor's thread: a job on a slot could not be interrupted. Stop taking; run() exits 75.
        self._stuck = watched
        self._completions.put(_WAKE)

    def _look(self) -> None:
        # The supervisor's thread, at every look (about once a second, or more often).
        self._liveness.look()
        self._enforce_stop_timeout()

    def _in_hand(self) -> list[InHand]:
        """The jobs running now, for the registry (read from the supervisor's thread)."""
        from ..ops.presence import InHand

        running = [r for r in (self._inline_running,) if r is not None] + list(self._busy.values())
        wall = time.time() - self._clock()  # the worker's clock is monotonic: the registry shows wall time
        return [
            InHand(r.delivery.queue, r.job.event_name, r.job.listener_type, r.job.uuid, wall + r.began) for r in running
        ]

    def _enforce_stop_timeout(self) -> None:
        # One slot: the listener runs in the main thread, so only a signal can reach it. Sent to
        # that thread, it lands in our handler as a second signal would.
        deadline = self._stop_deadline
        if deadline is None or not self._listener_in_main or self._clock() < deadline:
            return
        self._stop_deadline = None
        self._hard_stop = True
        if self._handlers_installed:
            main = threading.main_thread().ident
            assert main is not None
            signal.pthread_kill(main, signal.SIGTERM)

    def stop_reason(self) -> StopReason | None:
        """The one place that decides whether the worker stops taking jobs, checked between takes; None: go on."""
        # Asked before every take: plain tests in order of precedence, the first one met wins.
        options = self.options
        taken = self._outcomes.jobs_processed
        if self._stuck is not None:
            return StopReason.STUCK
        if self._stop_requested:
            return StopReason.INTERRUPTED
        if self._liveness.restart_requested():
            return StopReason.RESTART
        if options.once and taken >= 1:
            return StopReason.ONCE
        if options.max_jobs is not None and taken >= options.max_jobs:
            return StopReason.MAX_JOBS
        if options.max_time_secs is not None and self._clock() - self._started >= options.max_time_secs:
            return StopReason.MAX_TIME
        if not self._busy and (
            (options.stop_when_empty and self._empty_takes > 0)
            or (options.once and self._empty_wait_secs >= self.connection.block_timeout_secs)
        ):
            return StopReason.QUEUE_EMPTY
        return None

    # -- the loop --------------------------------------------------------------------------------

    def run(self) -> StopReason:
        """Work until a stop condition holds; returns which one."""
        name = self.connection.name
        if not self._driver.consumable:
            log.info("connection=%s driver=%s keeps no jobs: nothing to consume", name, self.connection.driver)
            return StopReason.NOTHING_TO_CONSUME
        previous = self._install_signal_handlers()
        self._outcomes.deferring = self._takes.taker is not None
        try:
            self._started = self._clock()
            slots = "" if self._inline else f" concurrency={self.concurrency}"
            log.info("worker started: connection=%s queues=%s%s", name, ",".join(self.queues), slots)
            self._liveness.started()
            if self._liveness.beats or (self._inline and self.stop_timeout_secs is not None):
                self._supervisor.start()  # it looks even while no job is in hand
            while (reason := self.stop_reason()) is None:
                self._cycle()
            self._wind_down()
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
        finally:
            self._outcomes.deferring = False
            self._settle()
            self._supervisor.close()
            self._liveness.stopped()
            self._threads.close()
            self._loop_slots.close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self._handlers_installed = False
        if reason is StopReason.STUCK:
            exit_now(self._supervisor.exit_process, EXIT_STUCK)
        return reason

    def _install_signal_handlers(self) -> dict[int, Any]:
        if not self.options.handle_signals or threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[int, Any] = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, self._on_signal)
        self._handlers_installed = True
        return previous

    def _cycle(self) -> None:
        """One turn of the loop: record what ended, then start what a free slot can take."""
        self._liveness.turn()
        if not self._completions.empty():
            self._collect(0.0)
        free = self.concurrency - len(self._busy)
        if free <= 0:
            self._collect(SLOT_WAIT_SECS)
            return
        if self._takes.held:
            held = self._takes.next_held()
            if held is not None:
                self._start(held)
            return
        began = self._clock()
        wait = self._take_wait_secs if not self._busy else min(self._take_wait_secs, BUSY_TAKE_WAIT_SECS)
        try:
            taken = self._takes.take(self._liveness.serving(), free, wait)
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
        if not taken:
            self._empty_takes += 1
            self._empty_wait_secs += self._clock() - began
            if self._provider is not None:
                self._provider.flush_parked()
            return
        self._empty_takes = 0
        self._empty_wait_secs = 0.0
        for delivery in taken:
            self._start(delivery)

    # -- starting and ending jobs ------------------------------------------------------------------

    def _start(self, delivery: Delivery) -> None:
        running = self._outcomes.prepare(delivery)
        if running is None:
            return  # unreadable, or out of tries: recorded as failed already
        if self._inline:
            self._end(running, self._run_here(running))
            return
        timeout = running.policy.timeout_secs
        if running.registration.is_async:
            self._loop_slots.start(running)
            running.watched = self._supervisor.watch(delivery, timeout)
        else:
            interrupt = self._threads.start(running)
            running.watched = self._supervisor.watch(delivery, timeout, interrupt if timeout is not None else None)
        self._busy[id(running)] = running

    def _run_here(self, running: Running) -> BaseException | None:
        """Run the listener in this thread (one slot); what it ended in (None: it returned)."""
        timeout = running.policy.timeout_secs
        supervisor = self._supervisor
        try:
            watched = supervisor.watch(running.delivery, timeout)
        except BaseException as exc:
            return exc
        try:
            self._inline_running = running
            self._listener_in_main = True
            try:
                registration = running.registration
                if timeout is None or registration.is_async:
                    run_handler(registration.make_listener(), running.event, timeout)
                else:
                    with soft_timeout(timeout):
                        run_handler(registration.make_listener(), running.event, timeout)
            finally:
                self._listener_in_main = False
                self._inline_running = None
        except BaseException as exc:
            return exc
        finally:
            supervisor.unwatch(watched)
        return None

    def _collect(self, wait_secs: float) -> None:
        """Record the outcomes of the jobs that ended, waiting up to ``wait_secs`` for the first."""
        completions = self._completions
        try:
            item = completions.get(timeout=wait_secs) if wait_secs > 0 else completions.get_nowait()
            while True:
                if item is not _WAKE:
                    running, outcome = item
                    item = None  # nothing of a finished job outlives its recording
                    self._busy.pop(id(running), None)
                    if running.watched is not None:
                        self._supervisor.unwatch(running.watched)
                    if not running.abandoned:
                        self._end(running, outcome)
                    running = outcome = None
                item = completions.get_nowait()
        except queue.Empty:
            return

    def _end(self, running: Running, outcome: BaseException | None) -> None:
        if isinstance(outcome, Abandoned):
            # Cut short by a hard stop: back to the front of its queue, not counted as an attempt.
            running.abandoned = True
            self._busy[id(running)] = running  # _settle gives it back with the others
            return
        self._outcomes.finish(running, outcome)

    # -- on the way out ----------------------------------------------------------------------------

    def _wind_down(self) -> None:
        """Taking has stopped: give back what was prefetched, let the jobs in flight end, then give up on the rest."""
        if not self._busy:
            return
        try:
            self._takes.give_back_unstarted()  # now, so that other workers can run them meanwhile
        except Exception as exc:
            log.warning("could not give back the prefetched jobs yet (%s): trying again at the end", exc)
        deadline = None if self.stop_timeout_secs is None else self._clock() + self.stop_timeout_secs
        if self._stop_deadline is not None and (deadline is None or self._stop_deadline < deadline):
            deadline = self._stop_deadline  # the stop timeout runs from the signal
        log.info("waiting for %d job(s) in flight to finish", len(self._busy))
        while any(not (r.watched is not None and r.watched.stuck) for r in self._busy.values()):
            left = SLOT_WAIT_SECS if deadline is None else deadline - self._clock()
            if self._hard_stop or left <= 0:
                return  # _settle gives back what is still running
            self._collect(min(left, SLOT_WAIT_SECS))
            self._takes.send_acks()  # now: while the rest run, these jobs are no longer extended

    def _settle(self) -> None:
        """On the way out: give back the jobs prefetched or still running, and acknowledge the finished ones."""
        abandoned = [r for r in self._busy.values() if not (r.watched is not None and r.watched.stuck)]
        for running in abandoned:
            running.abandoned = True
            if running.watched is not None:
                self._supervisor.unwatch(running.watched)
            (LoopSlots if running.registration.is_async else ThreadSlots).abandon(running)
            self._busy.pop(id(running))
        unstarted = len(self._takes.held)
        done = len(self._outcomes.done)
        try:
            self._takes.give_back_unstarted()
            if abandoned:
                back = self._driver.give_back([r.delivery for r in abandoned])
                log.warning(
                    "gave back %d job(s) still running when the worker stopped, to the front of their queues; "
                    "their listeners were interrupted",
                    back,
                )
            self._takes.acknowledge()
        except Exception as exc:
            self._takes.unstarted()
            self._outcomes.done.clear()
            running_too = f" and {len(abandoned)} still running" if abandoned else ""
            log.error(
                "could not settle %d finished and %d unstarted job(s)%s (%s): they return to their queues after "
                "the visibility timeout",
                done,
                unstarted,
                running_too,
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
            self._liveness.turn()  # healthy while it waits: an outage is not a hang
            self._sleep(min(left, PAUSE_SLICE_SECS))

    # -- one job, by hand --------------------------------------------------------------------------

    def process(self, delivery: Delivery) -> bool:
        """Run one taken job here and record its outcome; True if it succeeded. Never raises for a bad job."""
        running = self._outcomes.prepare(delivery)
        if running is None:
            return False
        return self._outcomes.finish(running, self._run_here(running))
