"""The application object: configuration, the listener registry and the queue connections."""

from __future__ import annotations

import functools
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .config import Config, load_config
from .drivers import Driver, check_queue_name, make_driver
from .errors import ConfigError, JobDecodeError, ListenerNotRegistered, OxideError
from .events import Event, Mode, listener_type_of, run_handler
from .wire import Job, encode_value

__all__ = ["App", "Registration", "current_app"]


@dataclass(frozen=True)
class Registration:
    """One ``listen`` call: which listener handles which event, and how it runs."""

    event_cls: type[Event]
    listener: Any  # a class (instantiated per job) or an instance
    mode: Mode

    @property
    def listener_type(self) -> str:
        return listener_type_of(self.listener)

    @functools.cached_property
    def is_async(self) -> bool:
        """Whether the listener's ``handle`` is ``async def`` (its timeout is asyncio's, not SIGALRM); asked per job, so kept."""
        import inspect

        return inspect.iscoroutinefunction(getattr(self.listener, "handle", None))

    def make_listener(self) -> Any:
        return self.listener() if isinstance(self.listener, type) else self.listener


_current: App | None = None
_current_lock = threading.Lock()


def current_app() -> App:
    """The most recently created :class:`App`, or a new one reading ``./config``."""
    global _current
    with _current_lock:
        if _current is None:
            _current = App()
        return _current


class App:
    """Listeners, their modes, and the queue connections they push to.

    ``App(config_dir=None)`` reads ``./.env`` and the config directory
    (``OXIDE_CONFIG_DIR`` or ``./config``); pass ``config=`` to use a
    :class:`~oxide.config.Config` built elsewhere.
    """

    def __init__(self, config_dir: str | os.PathLike[str] | None = None, *, config: Config | None = None) -> None:
        global _current
        self.config = config if config is not None else load_config(config_dir)
        self._by_event: dict[str, list[Registration]] = {}
        self._by_job: dict[tuple[str, str], Registration] = {}
        self._drivers: dict[str, Driver] = {}
        self._overrides: dict[str, Driver] = {}  # use_driver(): test doubles, kept across close()
        self._lock = threading.Lock()
        with _current_lock:
            _current = self

    # -- registry -------------------------------------------------------------------------------

    def listen(self, event_cls: type[Event], listener: Any, mode: Mode | None = None) -> None:
        """Run ``listener`` for every ``event_cls`` dispatched: inline, or queued by ``mode``."""
        if not (isinstance(event_cls, type) and issubclass(event_cls, Event)):
            raise OxideError(f"listen: {event_cls!r} is not an Event subclass")
        if not callable(getattr(listener, "handle", None)):
            raise OxideError(f"listen: {listener!r} has no handle(event) method")
        mode = Mode.sync() if mode is None else mode
        if not isinstance(mode, Mode):
            raise OxideError(f"listen: mode must be a Mode, got {mode!r}")
        if mode.queued:
            name = mode.connection if mode.connection is not None else self.config.default
            self.config.connection(name)  # an unknown connection is an error now, not at dispatch
        registration = Registration(event_cls, listener, mode)
        key = (event_cls.event_name, registration.listener_type)
        if key in self._by_job:
            raise OxideError(f"listen: {key[1]} already listens to {key[0]!r}")
        self._by_job[key] = registration
        self._by_event.setdefault(event_cls.event_name, []).append(registration)

    @property
    def registrations(self) -> Sequence[Registration]:
        """Every registration, in the order ``listen`` was called."""
        # _by_job holds each registration once, in insertion (= listen) order; _by_event groups by event.
        return list(self._by_job.values())

    def registration_for(self, job: Job) -> Registration:
        """The registration a job names; never imports code named by the wire."""
        try:
            return self._by_job[(job.event_name, job.listener_type)]
        except KeyError:
            raise ListenerNotRegistered(
                f"no listener {job.listener_type!r} is registered for event {job.event_name!r} in this application"
            ) from None

    # -- dispatch -------------------------------------------------------------------------------

    def dispatch(self, event: Event) -> None:
        """Run inline listeners now and push a job for each queued one, in registration order."""
        for connection, queue, job, delay in self._jobs_for(event):
            self.push(connection, queue, job, delay=delay)

    def dispatch_many(self, events: Sequence[Event]) -> None:
        """Dispatch several events: one ``push_many`` per (connection, queue), in event order.

        Inline listeners run as each event comes; the queued jobs are pushed after the last one,
        so the jobs of one queue arrive in one round trip where the driver allows, in order.
        """
        batches: dict[tuple[str, str, float], list[Job]] = {}
        for event in events:
            for connection, queue, job, delay in self._jobs_for(event):
                batches.setdefault((connection, queue, delay), []).append(job)
        for (connection, queue, delay), jobs in batches.items():
            self.push_many(connection, queue, jobs, delay=delay)

    def _jobs_for(self, event: Event) -> Iterator[tuple[str, str, Job, float]]:
        """Run ``event``'s inline listeners and yield (connection, queue, job, delay) for its queued ones, in order."""
        registrations = self._by_event.get(type(event).event_name, ())
        payload: Any = None
        for registration in registrations:
            if not registration.mode.queued:
                run_handler(registration.make_listener(), event)
                continue
            if payload is None:
                payload = event.to_payload()
                encode_value(payload)  # refuse what the wire cannot carry before anything is pushed
            job = Job(event.event_name, registration.listener_type, payload, uuid=str(uuid.uuid4()))
            mode = registration.mode
            connection = self.config.connection(mode.connection)
            yield connection.name, check_queue_name(mode.queue_name or connection.queue), job, mode.delay_secs or 0.0

    def push(self, connection: str | None, queue: str | None, job: Job, *, delay: float = 0.0) -> None:
        """Push one job onto ``queue`` of ``connection`` (``None``: the defaults), ready after ``delay`` seconds."""
        self.push_many(connection, queue, [job], delay=delay)

    def push_many(self, connection: str | None, queue: str | None, jobs: Sequence[Job], *, delay: float = 0.0) -> None:
        """Push several jobs in order, in as few round trips as the driver allows, ready after ``delay`` seconds."""
        delay_secs = _delay_secs(delay)
        conn = self.config.connection(connection)
        name = check_queue_name(conn.queue if queue is None else queue)
        bodies = [job.to_json() for job in jobs]
        if not bodies:
            return
        driver = self.driver(conn.name)
        if delay_secs > 0:
            driver.later(name, bodies, delay_secs)
        elif len(bodies) == 1:
            driver.push(name, bodies[0])
        else:
            driver.push_many(name, bodies)

    # -- connections ----------------------------------------------------------------------------

    def driver(self, connection: str | None = None) -> Driver:
        """The driver of a connection, built on first use and kept."""
        conn = self.config.connection(connection)
        with self._lock:
            driver = self._overrides.get(conn.name)
            if driver is None:
                driver = self._drivers.get(conn.name)
            if driver is None:
                driver = self._drivers[conn.name] = make_driver(conn, self.run_encoded)
        return driver

    def use_driver(self, connection: str | None, driver: Driver | None) -> Driver | None:
        """Make ``connection`` use ``driver`` until it is replaced again; returns the one it replaces, if any.

        For test doubles (``oxide.testing``): ``close()`` leaves them in place, so code
        under test that closes the app cannot send the next job to a real server.
        ``None`` ends the replacement: the configured driver is used again.
        """
        conn = self.config.connection(connection)
        with self._lock:
            previous = self._overrides.pop(conn.name, None)
            if driver is not None:
                self._overrides[conn.name] = driver
        return previous

    def close(self) -> None:
        """Close every driver this app opened."""
        with self._lock:
            drivers, self._drivers = list(self._drivers.values()), {}
        for driver in drivers:
            driver.close()

    # -- running jobs ---------------------------------------------------------------------------

    def decode(self, body: str | bytes) -> tuple[Job, Registration, Event]:
        """Decode a job body into its job, registration and event; raises OxideError subclasses."""
        job = Job.from_json(body)
        registration = self.registration_for(job)
        try:
            event = registration.event_cls.from_payload(job.payload)
        except Exception as exc:
            raise JobDecodeError(
                f"payload of {job.event_name!r} does not fit {registration.event_cls.__qualname__}: {exc}"
            ) from exc
        return job, registration, event

    def run_encoded(self, queue: str, body: str) -> None:
        """Run one encoded job inline (the sync driver); the listener's exception propagates."""
        _job, registration, event = self.decode(body)
        run_handler(registration.make_listener(), event)


def _delay_secs(delay: object) -> float:
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay < float("inf"):
        raise OxideError(f"push: delay: expected a finite number of seconds >= 0, got {delay!r}")
    return float(delay)


def load_app(spec: str) -> App:
    """Find the application named ``MODULE:ATTR``; ATTR is an App or a zero-argument callable returning one."""
    import importlib

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"--app: expected MODULE:ATTR (for example myapp.main:app), got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"--app {spec}: cannot import {module_name!r}: {exc}") from exc
    try:
        target = getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"--app {spec}: module {module_name!r} has no attribute {attr!r}") from None
    if not isinstance(target, App) and callable(target):
        target = target()
    if not isinstance(target, App):
        raise ConfigError(
            f"--app {spec}: expected an oxide.App or a callable returning one, got {type(target).__name__}"
        )
    return target
