"""``EventFake``: record the events an app dispatches, optionally without running any listener."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from ..events import Event, Mode
from .matching import JobFilter, describe_value, event_name_of, format_table, listener_type_for, plural

if TYPE_CHECKING:
    from ..app import App

__all__ = ["EventFake", "fake_events"]


def _describe_mode(mode: Mode) -> str:
    if not mode.queued:
        return "sync"
    text = f"queue {mode.connection or '(default)'}"
    if mode.queue_name:
        text += f" on {mode.queue_name}"
    settings = [
        f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}"
        for name, value in (
            ("tries", mode.max_tries),
            ("backoff", mode.backoff_secs),
            ("timeout", mode.timeout_secs),
            ("delay", mode.delay_secs),
        )
        if value is not None
    ]
    return " ".join([text, *settings])


class EventFake:
    """Records every event ``app.dispatch`` is given; by default no listener runs, inline or queued.

    ``events``: fake only these Event classes, dispatch the others as usual.
    ``run_listeners=True``: record, then dispatch as usual (a :class:`QueueFake`
    then sees the jobs). A plain object (``ev = EventFake(app)`` ... ``ev.restore()``)
    or a context manager (``with fake_events(app) as ev:``). It replaces
    ``dispatch`` on this app object, so code that kept ``app.dispatch`` in a
    variable before the fake started is not seen.
    """

    def __init__(self, app: App, events: Iterable[type[Event]] | None = None, *, run_listeners: bool = False) -> None:
        self.app = app
        self.run_listeners = run_listeners
        self.only = None if events is None else frozenset(event_name_of(e) for e in events)
        self.dispatched: list[Event] = []
        self._lock = threading.Lock()
        # What dispatch was before: the app's method, a replacement of the application's, or an earlier fake's.
        self._below: Callable[[Event], None] = app.dispatch
        # An instance attribute shadows the method for this app object only; restore() takes it away.
        app.__dict__["dispatch"] = self._record
        self.active = True

    def __repr__(self) -> str:
        return f"EventFake(dispatched={len(self.dispatched)}, run_listeners={self.run_listeners})"

    def restore(self) -> None:
        """Let ``app.dispatch`` run listeners again; the recorded events stay readable."""
        if not self.active:
            return
        self.active = False
        if self.app.__dict__.get("dispatch") != self._record:
            return  # a fake started later is in place: it passes events through ours, which now lets them by
        below = self._below
        while isinstance(fake := getattr(below, "__self__", None), EventFake) and not fake.active:
            below = fake._below  # skip fakes restored out of order
        if getattr(below, "__self__", None) is self.app and getattr(below, "__func__", None) is type(self.app).dispatch:
            del self.app.__dict__["dispatch"]
        else:
            self.app.__dict__["dispatch"] = below

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.restore()

    def _record(self, event: Event) -> None:
        if not self.active or (self.only is not None and type(event).event_name not in self.only):
            self._below(event)
            return
        with self._lock:
            self.dispatched.append(event)
        if self.run_listeners:
            self._below(event)

    # -- reading ---------------------------------------------------------------------------------

    def events(
        self, event: type[Event] | str | None = None, *, where: Callable[[Any], object] | None = None
    ) -> list[Event]:
        """The recorded events that match, in dispatch order."""
        flt = JobFilter.build(event=event, where=where)
        with self._lock:
            recorded = list(self.dispatched)
        return [e for e in recorded if flt.kind_matches(type(e).event_name, "") and flt.event_matches(e)]

    # -- assertions ------------------------------------------------------------------------------

    def assert_dispatched(
        self,
        event: type[Event] | str | None = None,
        *,
        where: Callable[[Any], object] | None = None,
        times: int | None = None,
    ) -> None:
        """At least one matching event was dispatched, or exactly ``times``."""
        if times is not None and (type(times) is not int or times < 0):
            raise ValueError(f"times= expects a whole number >= 0, got {times!r}")
        found = self.events(event, where=where)
        if (len(found) == times) if times is not None else bool(found):
            return
        flt = JobFilter.build(event=event, where=where)
        want = "at least once" if times is None else f"exactly {plural(times, 'time')}"
        got = plural(len(found), "time")
        marked = [flt.kind_matches(type(e).event_name, "") for e in self._recorded()] if event is not None else None
        raise AssertionError(
            f"expected {self._what(flt)} to be dispatched {want}, but it was dispatched {got}.\n{self._explain(marked)}"
        )

    def assert_not_dispatched(
        self, event: type[Event] | str | None = None, *, where: Callable[[Any], object] | None = None
    ) -> None:
        """No matching event was dispatched."""
        found = self.events(event, where=where)
        if not found:
            return
        flt = JobFilter.build(event=event, where=where)
        marked = [any(e is f for f in found) for e in self._recorded()]
        n = len(found)
        raise AssertionError(
            f"expected {self._what(flt, 'no')} to be dispatched, but {n} {'was' if n == 1 else 'were'} "
            f"(marked >):\n{self._table(marked)}"
        )

    def assert_nothing_dispatched(self) -> None:
        """No event was dispatched at all."""
        recorded = self._recorded()
        if recorded:
            n = len(recorded)
            raise AssertionError(
                f"expected no event to be dispatched, but {plural(n, 'event')} {'was' if n == 1 else 'were'}:\n"
                f"{self._table(None)}"
            )

    def assert_listening(self, event: type[Event] | str, listener: object, *, mode: Mode | None = None) -> None:
        """``listener`` is registered for ``event`` (with exactly ``mode``, if given)."""
        event_name, listener_type = event_name_of(event), listener_type_for(listener)
        registrations = list(self.app.registrations)
        for registration in registrations:
            if registration.event_cls.event_name == event_name and registration.listener_type == listener_type:
                if mode is None or registration.mode == mode:
                    return
                raise AssertionError(
                    f"{listener_type} listens to {event_name!r} with {_describe_mode(registration.mode)}, "
                    f"expected {_describe_mode(mode)}"
                )
        rows = [[r.event_cls.event_name, r.listener_type, _describe_mode(r.mode)] for r in registrations]
        table = format_table(("event", "listener", "mode"), rows) if rows else "  (no listener is registered)"
        raise AssertionError(
            f"expected {listener_type} to listen to {event_name!r}, but it does not. The app's listeners:\n{table}"
        )

    # -- messages --------------------------------------------------------------------------------

    def _recorded(self) -> list[Event]:
        with self._lock:
            return list(self.dispatched)

    @staticmethod
    def _what(flt: JobFilter, article: str = "a") -> str:
        return flt.describe(article, "event").replace(" for event ", " ")

    def _table(self, marked: list[bool] | None) -> str:
        rows = [[type(e).event_name, type(e).__qualname__, _payload(e)] for e in self._recorded()]
        return format_table(("event", "class", "payload"), rows, marked=marked)

    def _explain(self, marked: list[bool] | None) -> str:
        recorded = self._recorded()
        if not recorded:
            return "No event was dispatched."
        legend = " (> marks the event asked for)" if marked is not None and any(marked) else ""
        n = len(recorded)
        return f"{plural(n, 'event')} {'was' if n == 1 else 'were'} dispatched{legend}:\n{self._table(marked)}"


def _payload(event: Event) -> str:
    try:
        return describe_value(event.to_payload())
    except Exception:
        return repr(event)


def fake_events(app: App, events: Iterable[type[Event]] | None = None, *, run_listeners: bool = False) -> EventFake:
    """Start recording ``app``'s events: ``with fake_events(app) as ev: ...`` dispatches as usual again at the end."""
    return EventFake(app, events, run_listeners=run_listeners)
