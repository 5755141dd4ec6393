"""``QueueFake``: record every job an app pushes instead of sending it, and assert on what was pushed."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..events import Event
from ..wire import Job
from .clock import FakeClock
from .drivers import InstalledFake, MemoryDriver, install
from .matching import JobFilter, describe_value, format_table, plural

if TYPE_CHECKING:
    from ..app import App

__all__ = ["PushedJob", "QueueFake", "fake_queue"]


@dataclass(frozen=True)
class PushedJob:
    """One job as a producer pushed it: where it went, the job, and its event decoded by the app."""

    connection: str
    queue: str
    body: str  # the wire form, exactly as pushed
    job: Job | None  # None if the body is not a job at all
    event: Event | None  # None if the app cannot decode it (see decode_error)
    listener: Any  # the registered listener (class or instance), None if the app has none for it
    delay_secs: float | None = None  # set when pushed to run later
    decode_error: str | None = field(default=None, repr=False)

    @property
    def event_name(self) -> str:
        return self.job.event_name if self.job is not None else ""

    @property
    def listener_type(self) -> str:
        return self.job.listener_type if self.job is not None else ""

    @property
    def payload(self) -> Any:
        return self.job.payload if self.job is not None else None


HEADERS = ("connection", "queue", "event", "listener", "payload")


def _row(pushed: PushedJob) -> list[str]:
    payload = describe_value(pushed.payload) if pushed.job is not None else pushed.body
    where = pushed.queue if pushed.delay_secs is None else f"{pushed.queue} (+{pushed.delay_secs:g}s)"
    return [pushed.connection, where, pushed.event_name or "?", pushed.listener_type or "?", payload]


def jobs_table(jobs: Sequence[PushedJob], marked: Sequence[bool] | None = None) -> str:
    """The pushed jobs as a table, one per line, in push order."""
    return format_table(HEADERS, [_row(job) for job in jobs], marked=marked)


class QueueFake(InstalledFake):
    """Records the jobs an app pushes, on every connection or the ones named, instead of sending them.

    Use it as a plain object (``q = QueueFake(app)`` ... ``q.restore()``) or as a
    context manager (``with fake_queue(app) as q:``). Recorded jobs also wait in
    in-memory queues that behave like Redis, so :meth:`drain` can run them
    through the real worker afterwards.
    """

    def __init__(self, app: App, connections: Iterable[str] | None = None, *, clock: FakeClock | None = None) -> None:
        self.app = app
        self.clock = clock if clock is not None else FakeClock()
        names = list(app.config.connections) if connections is None else [str(n) for n in connections]
        for name in names:
            app.config.connection(name)  # an unknown name fails now, listing the defined ones
        self.jobs: list[PushedJob] = []
        self._lock = threading.Lock()
        self.drivers: dict[str, MemoryDriver] = {}
        for name in dict.fromkeys(names):
            driver = MemoryDriver(app.config.connection(name), self.clock, on_push=self._recorder(name))
            install(app, name, driver)
            self.drivers[name] = driver
        self.active = True

    def __repr__(self) -> str:
        return f"QueueFake(connections={list(self.drivers)}, pushed={len(self.jobs)})"

    # -- recording -------------------------------------------------------------------------------

    def _recorder(self, connection: str) -> Callable[[str, str, float | None], None]:
        def record(queue: str, body: str, delay_secs: float | None) -> None:
            pushed = self._decode(connection, queue, body, delay_secs)
            with self._lock:
                self.jobs.append(pushed)

        return record

    def _decode(self, connection: str, queue: str, body: str, delay_secs: float | None) -> PushedJob:
        try:
            job, registration, event = self.app.decode(body)
        except Exception as exc:
            try:
                job = Job.from_json(body)
            except Exception:
                job = None
            return PushedJob(connection, queue, body, job, None, None, delay_secs, f"{type(exc).__name__}: {exc}")
        return PushedJob(connection, queue, body, job, event, registration.listener, delay_secs)

    # -- reading ---------------------------------------------------------------------------------

    def pushed(
        self,
        listener: object = None,
        *,
        event: type[Event] | str | None = None,
        connection: str | None = None,
        queue: str | None = None,
        where: Callable[[Any], object] | None = None,
    ) -> list[PushedJob]:
        """The recorded jobs that match, in push order. ``listener`` may also be an Event subclass."""
        return self._matching(JobFilter.build(listener, event=event, connection=connection, queue=queue, where=where))

    def _matching(self, flt: JobFilter) -> list[PushedJob]:
        with self._lock:
            jobs = list(self.jobs)
        return [
            job
            for job in jobs
            if flt.kind_matches(job.event_name, job.listener_type)
            and flt.place_matches(job.connection, job.queue)
            and flt.event_matches(job.event)
        ]

    def clear(self) -> None:
        """Forget what was recorded so far (the queues keep their jobs): for a test that acts twice."""
        with self._lock:
            self.jobs.clear()

    # -- assertions ------------------------------------------------------------------------------

    def assert_pushed(
        self,
        listener: object = None,
        *,
        event: type[Event] | str | None = None,
        connection: str | None = None,
        queue: str | None = None,
        where: Callable[[Any], object] | None = None,
        times: int | None = None,
    ) -> None:
        """At least one matching job was pushed, or exactly ``times``. ``listener`` may also be an Event subclass."""
        flt = JobFilter.build(listener, event=event, connection=connection, queue=queue, where=where)
        self._assert_count(flt, times)

    def assert_pushed_on(
        self,
        queue: str,
        listener: object = None,
        *,
        connection: str | None = None,
        event: type[Event] | str | None = None,
        where: Callable[[Any], object] | None = None,
        times: int | None = None,
    ) -> None:
        """Like :meth:`assert_pushed`, on ``queue`` (of ``connection``, or of any connection)."""
        flt = JobFilter.build(listener, event=event, connection=connection, queue=queue, where=where)
        self._assert_count(flt, times)

    def assert_not_pushed(
        self,
        listener: object = None,
        *,
        event: type[Event] | str | None = None,
        connection: str | None = None,
        queue: str | None = None,
        where: Callable[[Any], object] | None = None,
    ) -> None:
        """No matching job was pushed."""
        flt = JobFilter.build(listener, event=event, connection=connection, queue=queue, where=where)
        found = self._matching(flt)
        if found:
            with self._lock:
                jobs = list(self.jobs)
            offending = [any(job is f for f in found) for job in jobs]
            n = len(found)
            raise AssertionError(
                f"expected {flt.describe('no')} to be pushed, but {n} {'was' if n == 1 else 'were'} pushed "
                f"(marked >):\n{jobs_table(jobs, offending)}"
            )

    def assert_nothing_pushed(self) -> None:
        """No job was pushed at all."""
        with self._lock:
            jobs = list(self.jobs)
        if jobs:
            raise AssertionError(f"expected nothing to be pushed, but {_count_pushed(len(jobs))}:\n{jobs_table(jobs)}")

    def _assert_count(self, flt: JobFilter, times: int | None) -> None:
        if times is not None and (type(times) is not int or times < 0):
            raise ValueError(f"times= expects a whole number >= 0, got {times!r}")
        found = self._matching(flt)
        if (len(found) == times) if times is not None else bool(found):
            return
        want = "at least once" if times is None else f"exactly {plural(times, 'time')}"
        head = f"expected {flt.describe()} to be pushed {want}, but it was pushed {plural(len(found), 'time')}."
        raise AssertionError(f"{head}\n{self._explain(flt)}")

    def _explain(self, flt: JobFilter) -> str:
        with self._lock:
            jobs = list(self.jobs)
        if not jobs:
            return "Nothing was pushed."
        if flt.listener_type is None and flt.event_name is None:
            return f"{_count_pushed(len(jobs)).capitalize()}:\n{jobs_table(jobs)}"
        marked = [flt.kind_matches(job.event_name, job.listener_type) for job in jobs]
        legend = " (> marks the listener/event asked for)" if any(marked) else ""
        return f"{_count_pushed(len(jobs)).capitalize()}{legend}:\n{jobs_table(jobs, marked)}"


def _count_pushed(count: int) -> str:
    return f"{plural(count, 'job')} {'was' if count == 1 else 'were'} pushed"


def fake_queue(app: App, connections: Iterable[str] | None = None, *, clock: FakeClock | None = None) -> QueueFake:
    """Start recording ``app``'s jobs: ``with fake_queue(app) as q: ...`` restores the drivers at the end."""
    return QueueFake(app, connections, clock=clock)
