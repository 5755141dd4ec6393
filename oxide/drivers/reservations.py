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
import time
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any, NamedTuple

from .keyspace import PLAIN, KeySpace
from .lane import LaneScript, lane_for, packed, packed4, packed_head

__all__ = ["Reservations", "Reserved", "keys_of"]

# How often a worker reads the server's clock for the deadlines of its takes (see _deadline).
CLOCK_EVERY_SECS = 1.0
_TIME = packed(1, packed_head("TIME"), ())

SUFFIXES = ("", ":reserved", ":delayed", ":notify", ":crashes")
READY, RESERVED, DELAYED, NOTIFY, CRASHES = range(5)


def keys_of(queue: str, space: KeySpace = PLAIN) -> list[str]:
    """The five keys of one queue, in the order the scripts expect them (names: ``keyspace.py``)."""
    base = space.base(queue)
    return [base + suffix for suffix in SUFFIXES]


class Reserved(NamedTuple):
    """One reserved job: its queue, the reservation's member, the body and how often it was lost before.

    A named tuple, not a dataclass: one is made per job taken, and a tuple is made in a fraction of the time.
    """

    queue: str
    member: bytes
    crashes: int

    @property
    def body(self) -> bytes:
        return self.member.split(b"|", 1)[1]


# take.lua for one list of queues (Reservations._take_script).
_TakeScript = tuple[LaneScript, dict[bytes, str], bytes, dict[str, tuple[bytes, bytes]]]


def _take_keys(queues: Sequence[str], space: KeySpace) -> list[str]:
    """take.lua's KEYS: the queues' ready lists, then their reserved sets, then their crash counts,
    each run in priority order."""
    of = [keys_of(queue, space) for queue in queues]
    return [keys[kind] for kind in (READY, RESERVED, CRASHES) for keys in of]


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
            for name in ("reserve", "take", "later", "ack", "release", "extend", "promote", "give_back")
        }
        # The take and the push, once per job, go by a lane where the client allows (lane.py).
        self.lane = lane_for(client)
        self._takes: dict[tuple[str, ...], _TakeScript] = {}
        self._pushes: dict[str, bytes] = {}  # a queue's packed "LPUSH <key>"
        # Tokens only need to be unique among live members: a random worker id and a counter.
        self._worker = f"{os.getpid():x}{secrets.token_hex(4)}"
        self._counter = itertools.count(1)
        self._token_head = f"{self._worker}.".encode()  # the busy take's tokens, made as bytes
        # The busy take's deadline, on the server's clock without asking it every time (_deadline).
        self._offset_ms = 0.0  # the server's clock minus time.monotonic(), in ms
        self._sync_due = float("-inf")  # when to read the server's clock again
        self._synced_on = -1  # lane.connections when it was read: a new connection may be another server
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

    def _take_script(self, queues: tuple[str, ...]) -> _TakeScript:
        """take.lua on the lane with ``queues``' keys packed once; each queue by its ready list's key
        (the script's one-job reply names the list it took from); the busy call packed up to its
        varying part; and each queue's index as an acknowledgement names it, packed."""
        entry = self._takes.get(queues)
        if entry is None:
            if len(self._takes) >= 64:  # callers passing ever new lists must not grow this without bound
                self._takes.clear()
            assert self.lane is not None
            keys = _take_keys(queues, self.space)
            script = self.lane.script(_script_text("take"), keys, key_count=len(keys))
            entry = self._takes[queues] = (
                script,
                {key.encode(): q for key, q in zip(keys[: len(queues)], queues, strict=True)},
                script.prefix(4),  # the busy call: the deadline, the token and one acknowledgement
                # An acknowledgement's index is negative when the job came with a crash count, to be
                # dropped with it: (index, -index), chosen by `crashes > 0`.
                {q: (b"%d" % i, b"%d" % -i) for i, q in enumerate(queues, 1)},
            )
        return entry

    def _now(self) -> str:
        return "" if self._clock_ms is None else str(self._clock_ms())

    def _token(self) -> str:
        return f"{self._worker}.{next(self._counter)}"

    def reserve(self, queues: Sequence[str], limit: int = 1, *, pass_on: bool = False) -> list[Reserved]:
        """Up to ``limit`` jobs from the first non-empty queue, in priority order; [] if all are empty."""
        return self.ack_and_reserve((), queues, limit, pass_on=pass_on)[1]

    def ack_and_reserve(
        self,
        done: Sequence[Reserved],
        queues: Sequence[str],
        limit: int = 1,
        *,
        migrate: bool = True,
        pass_on: bool = False,
    ) -> tuple[list[bool], list[Reserved]]:
        """Acknowledge ``done``, then take up to ``limit`` jobs as :meth:`reserve` does: one round trip.

        Returns, for each job of ``done``, whether its reservation was still held (as :meth:`ack`),
        and the jobs taken. Every job of ``done`` must come from one of ``queues``. ``migrate=False``
        skips moving due delayed and expired jobs back into the queues this time (the lean
        ``take`` script). ``pass_on`` (after a wait) wakes another idle worker if the queue taken
        from still holds jobs.
        """
        if not (migrate or pass_on) and self.lane is not None:
            return self.take(done, tuple(queues), limit)
        return self._by_reserve(done, queues, limit, migrate=migrate, pass_on=pass_on)

    def _by_reserve(
        self, done: Sequence[Reserved], queues: Sequence[str], limit: int, *, migrate: bool, pass_on: bool
    ) -> tuple[list[bool], list[Reserved]]:
        """reserve.lua's acknowledge-and-take, which reads the clock of the server holding the keys."""
        keys, index = self._layout(queues)
        acks: list[Any] = []
        for job in done:
            # A negative index: the job was taken with a crash count, to be dropped with it.
            acks += (-index[job.queue] if job.crashes else index[job.queue], job.member)
        args: list[Any] = [self._now(), self.visibility_ms, self._token(), limit, "1" if migrate else "0"]
        args += ("1" if pass_on else "0", *acks)
        return self._taken(queues, self._scripts["reserve"](keys=keys, args=args))

    def take(self, done: Sequence[Reserved], queues: tuple[str, ...], limit: int) -> tuple[list[bool], list[Reserved]]:
        """The busy take (take.lua): what a worker does once per job, so kept to the fewest steps.

        take.lua is given its deadline on the server's clock, which the driver follows through its
        lane (_deadline). Without a lane (a cluster client, whose servers each keep their own
        time) it is reserve.lua without its periodic step, which reads the clock of the server
        holding the keys.
        """
        if self.lane is None:
            return self._by_reserve(done, queues, limit, migrate=False, pass_on=False)
        script, by_key, busy, positions = self._take_script(queues)
        deadline = self._deadline()
        token = b"%b%d" % (self._token_head, next(self._counter))
        if limit == 1 and len(done) == 1:  # a busy worker with one slot: packed without a loop
            job = done[0]
            reply = script.send(packed4(busy, deadline, token, positions[job.queue][job.crashes > 0], job.member))
        else:
            tail = [b"1" if limit == 1 else b"%d" % limit, deadline, token]
            for job in done:
                tail += (positions[job.queue][job.crashes > 0], job.member)
            reply = script(tail)
        if type(reply) is not bytes:
            if not isinstance(reply, str):
                return self._taken(queues, reply)
            reply = reply.encode()  # from a client made with decode_responses=True
        # One job: "<flags> <ready key> <count> <member>".
        flags, key, count, member = reply.split(b" ", 3)
        held = [True] if flags == b"1" else [flag == 49 for flag in flags]  # 49: b"1"
        return held, [Reserved(by_key[key], member, int(count))]

    def _deadline(self) -> bytes:
        """take.lua's deadline: now on the server's clock plus the visibility timeout.

        The server's clock is read at most every CLOCK_EVERY_SECS, and after every new connection,
        and followed with the monotonic clock in between: a deadline is then off by at most half a
        round trip, where reading it per take cost the take a sixth of its server time.
        """
        if self._clock_ms is not None:
            return b"%d" % (self._clock_ms() + self.visibility_ms)
        lane = self.lane
        assert lane is not None
        now = time.monotonic()
        if now >= self._sync_due or self._synced_on != lane.connected():
            sent = now
            seconds, micros = lane.call(_TIME)
            now = time.monotonic()
            self._offset_ms = int(seconds) * 1000 + int(micros) / 1000 - (sent + now) * 500
            self._sync_due = now + CLOCK_EVERY_SECS
            self._synced_on = lane.connections
        return b"%d" % (self._offset_ms + now * 1000 + self.visibility_ms)

    @staticmethod
    def _taken(queues: Sequence[str], reply: Any) -> tuple[list[bool], list[Reserved]]:
        """A take script's reply: whether each acknowledgement held, and the jobs taken."""
        flags = reply[0]
        if flags == b"1":  # a busy worker's one acknowledgement, held
            held = [True]
        else:
            held = [flag == 49 for flag in (flags if type(flags) is bytes else _as_bytes(flags))]  # 49: b"1"
        if len(reply) < 2:
            return held, []
        if len(reply) == 4 and type(reply[2]) is bytes:  # one job, the default
            return held, [Reserved(queues[reply[1] - 1], reply[2], reply[3])]
        queue = queues[int(reply[1]) - 1]
        members = reply[2::2]
        if members and type(members[0]) is not bytes:
            members = [_as_bytes(member) for member in members]
        return held, [Reserved(queue, member, int(count)) for member, count in zip(members, reply[3::2], strict=True)]

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

    def push(self, queue: str, bodies: Sequence[str | bytes]) -> None:
        """Add jobs to the back of ``queue`` (oldest first); if it was empty, wake an idle worker.

        One ``LPUSH``: it answers the queue's new length, and only a queue that was empty can have
        workers asleep on it (a worker sleeps only after finding every queue empty). A worker woken
        passes the wake-up on while jobs remain (reserve.lua), so a burst wakes every idle worker.
        A push followed by WAIT (``wait_replicas``) sends its LPUSH in the WAIT's pipeline and hands
        the reply to :meth:`pushed`.
        """
        encoded = [body.encode() if isinstance(body, str) else body for body in bodies]
        ready = keys_of(queue, self.space)[READY]
        if self.lane is None:
            length = int(self.client.lpush(ready, *encoded))
        else:
            head = self._pushes.get(queue)
            if head is None:
                if len(self._pushes) >= 1024:  # producers naming ever new queues must not grow this without bound
                    self._pushes.clear()
                head = self._pushes[queue] = packed_head("LPUSH", ready)
            length = int(self.lane.call(packed(2, head, encoded)))
        self.pushed(queue, len(encoded), length)

    def pushed(self, queue: str, count: int, length: int) -> None:
        """``count`` jobs were pushed and ``queue`` is now ``length`` long: wake a worker if it was empty."""
        if length == count:
            self.signal(queue)

    def signal(self, queue: str) -> None:
        """Wake one worker waiting on ``queue`` (its token list capped: nobody may be listening)."""
        notify = keys_of(queue, self.space)[NOTIFY]
        if self.lane is None:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.lpush(notify, "1").ltrim(notify, 0, 999).execute()
            return
        self.lane.call_many(
            [packed(3, packed_head("LPUSH", notify, "1"), ()), packed(4, packed_head("LTRIM", notify, 0, 999), ())]
        )

    def later(self, queue: str, bodies: Sequence[str | bytes], delay_ms: int, *, client: Any = None) -> None:
        """Make jobs ready in ``queue`` after ``delay_ms`` (``client``: a pipeline to queue the call on
        instead, for a delayed push followed by WAIT)."""
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
