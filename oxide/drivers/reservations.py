"""Reservations on Redis: the Python side of the Lua scripts in ``lua/``.

A taken job is not gone: it waits in ``oxide:queue:<q>:reserved`` (member
``"<token>|<body>"``, score = visibility deadline in ms) until the worker
acknowledges it, releases it for another attempt, or dies — then the next
reserve on that queue puts it back at the front of the line. A live worker
extends its deadline while the job runs, so only a dead worker's job returns.

Times are the server's clock unless a ``clock_ms`` is given (tests pass a
fake one), so skewed worker clocks never move deadlines.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from .keyspace import PLAIN, KeySpace

__all__ = ["Reservations", "Reserved", "keys_of"]

SUFFIXES = ("", ":reserved", ":delayed", ":notify", ":crashes")
READY, RESERVED, DELAYED, NOTIFY, CRASHES = range(5)


def keys_of(queue: str, space: KeySpace = PLAIN) -> list[str]:
    """The five keys of one queue, in the order the scripts expect them (names: ``keyspace.py``)."""
    base = space.base(queue)
    return [base + suffix for suffix in SUFFIXES]


@dataclass(frozen=True, slots=True)
class Reserved:
    """One reserved job: its queue, the reservation's member, the body and how often it was lost before."""

    queue: str
    member: bytes
    crashes: int

    @property
    def body(self) -> bytes:
        return self.member.split(b"|", 1)[1]


def _as_bytes(value: Any) -> bytes:
    # A client made with decode_responses=True hands back str.
    return value.encode() if isinstance(value, str) else bytes(value)


def _script_text(name: str) -> str:
    return resources.files("oxide.drivers").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


class Reservations:
    """Reserve, acknowledge, release and extend jobs atomically with the Lua scripts."""

    def __init__(
        self, client: Any, *, visibility_ms: int, clock_ms: Callable[[], int] | None = None, space: KeySpace = PLAIN
    ) -> None:
        self.client = client
        self.space = space
        self.visibility_ms = visibility_ms
        self._clock_ms = clock_ms
        self._scripts = {
            name: client.register_script(_script_text(name))
            for name in ("reserve", "push", "later", "ack", "release", "extend", "promote", "give_back")
        }
        # Tokens only need to be unique among live members: a random worker id and a counter.
        self._worker = f"{os.getpid():x}{secrets.token_hex(4)}"
        self._counter = itertools.count(1)
        # A worker takes from the same queues every time: their keys and positions, worked out once.
        self._layouts: dict[tuple[str, ...], tuple[list[str], dict[str, int]]] = {}

    def _layout(self, queues: Sequence[str]) -> tuple[list[str], dict[str, int]]:
        """The reserve script's KEYS for ``queues``, and each queue's 1-based position among them."""
        names = tuple(queues)
        layout = self._layouts.get(names)
        if layout is None:
            if len(self._layouts) >= 64:  # callers passing ever new lists must not grow this without bound
                self._layouts.clear()
            layout = (
                [key for queue in names for key in keys_of(queue, self.space)],
                {q: i for i, q in enumerate(names, 1)},
            )
            self._layouts[names] = layout
        return layout

    def _now(self) -> str:
        return "" if self._clock_ms is None else str(self._clock_ms())

    def _token(self) -> str:
        return f"{self._worker}.{next(self._counter)}"

    def reserve(self, queues: Sequence[str], limit: int = 1) -> list[Reserved]:
        """Up to ``limit`` jobs from the first non-empty queue, in priority order; [] if all are empty."""
        return self.ack_and_reserve((), queues, limit)[1]

    def ack_and_reserve(
        self, done: Sequence[Reserved], queues: Sequence[str], limit: int = 1, *, migrate: bool = True
    ) -> tuple[list[bool], list[Reserved]]:
        """Acknowledge ``done``, then take up to ``limit`` jobs as :meth:`reserve` does: one round trip.

        Returns, for each job of ``done``, whether its reservation was still held (as :meth:`ack`),
        and the jobs taken. Every job of ``done`` must come from one of ``queues``. ``migrate=False``
        skips moving due delayed and expired jobs back into the queues this time.
        """
        keys, index = self._layout(queues)
        args: list[Any] = [self._now(), self.visibility_ms, self._token(), limit, "1" if migrate else "0"]
        if done:
            for job in done:
                args += (index[job.queue], job.member)
        reply = self._scripts["reserve"](keys=keys, args=args)
        held = [flag == ord("1") for flag in _as_bytes(reply[0])]
        if len(reply) < 2:
            return held, []
        queue = queues[int(reply[1]) - 1]
        return held, [Reserved(queue, _as_bytes(reply[i]), int(reply[i + 1])) for i in range(2, len(reply), 2)]

    def give_back(self, jobs: Sequence[Reserved]) -> int:
        """Return reserved jobs never started to the front of their queues, in order, no attempt counted.

        Returns how many went back; a job whose reservation had expired is back in its queue already.
        """
        back = 0
        by_queue: dict[str, list[bytes]] = {}
        for job in jobs:
            by_queue.setdefault(job.queue, []).append(job.member)
        for queue, members in by_queue.items():
            keys = keys_of(queue, self.space)
            back += int(self._scripts["give_back"](keys=[keys[RESERVED], keys[READY], keys[NOTIFY]], args=members))
        return back

    def push(self, queue: str, bodies: Sequence[str | bytes], *, client: Any = None) -> None:
        """Add jobs to the back of ``queue`` (oldest first) and wake one idle worker per job.

        ``client``: a pipeline to queue the call on instead (a push followed by WAIT)."""
        keys = keys_of(queue, self.space)
        self._scripts["push"](keys=[keys[READY], keys[NOTIFY]], args=list(bodies), client=client)

    def later(self, queue: str, bodies: Sequence[str | bytes], delay_ms: int, *, client: Any = None) -> None:
        """Make jobs ready in ``queue`` after ``delay_ms`` (``client``: as for :meth:`push`)."""
        keys = keys_of(queue, self.space)
        self._scripts["later"](
            keys=[keys[DELAYED]], args=[self._now(), delay_ms, self._token(), *bodies], client=client
        )

    def ack(self, job: Reserved) -> bool:
        """The job is done; False if its reservation had expired (it may run again elsewhere)."""
        keys = keys_of(job.queue, self.space)
        return bool(self._scripts["ack"](keys=[keys[RESERVED], keys[CRASHES]], args=[job.member]))

    def release(self, job: Reserved, body: str | bytes, delay_ms: int = 0) -> bool:
        """Queue ``body`` (the job with its attempts raised) again, now or after ``delay_ms``."""
        keys = keys_of(job.queue, self.space)
        return bool(
            self._scripts["release"](
                keys=[keys[RESERVED], keys[CRASHES], keys[READY], keys[DELAYED], keys[NOTIFY]],
                args=[job.member, body, self._now(), delay_ms, self._token()],
            )
        )

    def extend(self, job: Reserved) -> bool:
        """Push the job's deadline a visibility timeout forward; False if it had already expired."""
        keys = keys_of(job.queue, self.space)
        return bool(self._scripts["extend"](keys=[keys[RESERVED]], args=[job.member, self._now(), self.visibility_ms]))

    def promote(self, queues: Sequence[str]) -> int:
        """Move due delayed jobs into their queues (reserve does this itself); returns how many moved."""
        keys = [key for queue in queues for key in keys_of(queue, self.space)[READY : DELAYED + 1 : DELAYED]]
        return int(self._scripts["promote"](keys=keys, args=[self._now()]))

    def wait(self, queues: Sequence[str], timeout_secs: float) -> None:
        """Block until a producer signals one of ``queues`` or the timeout passes (one BRPOP for all)."""
        self.client.brpop([keys_of(q, self.space)[NOTIFY] for q in queues], timeout=timeout_secs)
