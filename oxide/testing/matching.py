"""What the assertions share: choosing jobs by listener, event, place and predicate, and showing them as a table."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from ..events import Event, listener_type_of
from ..wire import encode_value

__all__ = ["JobFilter", "describe_value", "event_name_of", "format_table", "listener_type_for", "plural"]

# Cells longer than this are cut, so one big payload cannot push the table off the screen.
MAX_CELL = 60
# Rows shown before "... and N more".
MAX_ROWS = 50


def plural(count: int, noun: str) -> str:
    """``plural(1, "job")`` -> ``"1 job"``; ``plural(2, "job")`` -> ``"2 jobs"``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def is_event_class(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, Event)


def listener_type_for(listener: object) -> str:
    """The wire name a filter compares: a listener class or instance, or its ``listener_type`` string."""
    if isinstance(listener, str):
        return listener
    if is_event_class(listener):
        raise TypeError(f"{listener!r} is an Event class, not a listener: pass it as event=")
    return listener_type_of(listener)


def event_name_of(event: type[Event] | str) -> str:
    """The ``event_name`` a filter compares: an Event subclass, or the name itself."""
    if isinstance(event, str):
        return event
    if not is_event_class(event):
        raise TypeError(f"event= expects an Event subclass or an event_name string, got {event!r}")
    return event.event_name


def _predicate_name(where: Callable[[Any], object]) -> str:
    name = getattr(where, "__qualname__", None) or repr(where)
    return "a lambda" if name.endswith("<lambda>") else name


@dataclass(frozen=True)
class JobFilter:
    """Which jobs an assertion is about; every field left None matches anything."""

    listener_type: str | None = None
    event_name: str | None = None
    connection: str | None = None
    queue: str | None = None
    where: Callable[[Any], object] | None = None

    @classmethod
    def build(
        cls,
        listener: object = None,
        *,
        event: type[Event] | str | None = None,
        connection: str | None = None,
        queue: str | None = None,
        where: Callable[[Any], object] | None = None,
    ) -> JobFilter:
        """The filter for an assertion's arguments; an Event subclass given as ``listener`` is taken as ``event``."""
        if is_event_class(listener):
            if event is not None:
                raise TypeError("an Event class was passed both as the first argument and as event=")
            event, listener = cast("type[Event]", listener), None
        if where is not None and not callable(where):
            raise TypeError(f"where= expects a callable taking the event, got {where!r}")
        return cls(
            listener_type=None if listener is None else listener_type_for(listener),
            event_name=None if event is None else event_name_of(event),
            connection=connection,
            queue=queue,
            where=where,
        )

    def kind_matches(self, event_name: str, listener_type: str) -> bool:
        """Whether the listener and event fit, wherever the job went and whatever it holds."""
        return (self.listener_type is None or listener_type == self.listener_type) and (
            self.event_name is None or event_name == self.event_name
        )

    def place_matches(self, connection: str, queue: str) -> bool:
        return (self.connection is None or connection == self.connection) and (
            self.queue is None or queue == self.queue
        )

    def event_matches(self, event: object) -> bool:
        """The predicate on the decoded event; a job whose event could not be decoded never matches one."""
        if self.where is None:
            return True
        return event is not None and bool(self.where(event))

    @property
    def narrow(self) -> bool:
        """Whether the filter asks for more than the listener and event: a place or a predicate."""
        return self.connection is not None or self.queue is not None or self.where is not None

    def describe(self, article: str = "a", noun: str = "job") -> str:
        """``a job of listener 'app.Send' for event 'user.registered' on queue 'emails' matching a lambda``."""
        if article == "a" and noun[:1] in "aeiou":
            article = "an"
        parts = [f"{article} {noun}"]
        if self.listener_type is not None:
            parts.append(f"of listener {self.listener_type!r}")
        if self.event_name is not None:
            parts.append(f"for event {self.event_name!r}")
        if self.queue is not None:
            parts.append(f"on queue {self.queue!r}")
        if self.connection is not None:
            parts.append(f"{'of' if self.queue is not None else 'on'} connection {self.connection!r}")
        if self.where is not None:
            parts.append(f"matching {_predicate_name(self.where)}")
        return " ".join(parts)


def describe_value(value: object) -> str:
    """A JSON value in its compact wire form (or its repr, if it is not one)."""
    try:
        return encode_value(value)
    except Exception:
        return repr(value)


def _cut(text: str) -> str:
    text = " ".join(text.split())  # a cell is one line
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 3] + "..."


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, marked: Sequence[bool] | None = None) -> str:
    """Rows under headers in aligned columns, numbered from 1; ``marked`` rows start with ``>``."""
    shown = rows[:MAX_ROWS]
    cells = [["#", *headers]] + [[str(n), *(_cut(c) for c in row)] for n, row in enumerate(shown, start=1)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = []
    for index, row in enumerate(cells):
        mark = ">" if marked is not None and index > 0 and marked[index - 1] else " "
        lines.append(
            f"  {mark} " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    if len(rows) > len(shown):
        lines.append(f"    ... and {len(rows) - len(shown)} more")
    return "\n".join(lines)
