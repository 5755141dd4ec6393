"""A stateful model of the whole reservation protocol (reserve/ack/release/extend/expire/delay).

The scripts run against fakeredis here (and against the real server in
tests/integration) with a fake clock passed in, and every reply and every key
is compared with a plain-Python model after each step. Besides exact agreement
the model's invariant is conservation: every job pushed is in exactly one of
ready, reserved or delayed, or was acknowledged.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, initialize, invariant, multiple, rule

from oxide.drivers.reservations import Reservations, Reserved, keys_of
from tests.hypothesis_profiles import examples, steps

QUEUES = ["high", "default", "low"]
VISIBILITY_MS = 1000


@dataclass
class QueueModel:
    ready: deque[bytes] = field(default_factory=deque)  # left = front (taken next)
    reserved: dict[bytes, int] = field(default_factory=dict)  # member -> deadline
    delayed: dict[bytes, int] = field(default_factory=dict)  # member -> due time
    crashes: dict[bytes, int] = field(default_factory=dict)


def body_of(member: bytes) -> bytes:
    return member.split(b"|", 1)[1]


class ReservationMachine(RuleBasedStateMachine):
    """Subclasses set ``make_client``; the protocol is checked step by step against the model."""

    held = Bundle("held")

    def make_client(self) -> Any:
        import fakeredis

        return fakeredis.FakeRedis()

    def cleanup(self, client: Any) -> None:
        client.close()

    @initialize()
    def setup(self) -> None:
        self.client = self.make_client()
        self.prefix = getattr(self, "queue_prefix", "")
        self.now = 1_700_000_000_000
        self.res = Reservations(self.client, visibility_ms=VISIBILITY_MS, clock_ms=lambda: self.now)
        self.model = {q: QueueModel() for q in QUEUES}
        self.counter = 0
        self.pushed = 0
        self.acked = 0

    def teardown(self) -> None:
        if hasattr(self, "client"):
            keys = [k for q in QUEUES for k in keys_of(self.prefix + q)]
            self.client.delete(*keys)
            self.cleanup(self.client)

    def _name(self, queue: str) -> str:
        return self.prefix + queue

    def _new_body(self, duplicate: bool) -> bytes:
        if duplicate and self.counter:
            return b'{"job":0}'
        self.counter += 1
        return b'{"job":%d}' % self.counter

    # -- model steps mirroring reserve.lua -----------------------------------------------------

    def _migrate(self, queue: str) -> None:
        m = self.model[queue]
        due = sorted((at, member) for member, at in m.delayed.items() if at <= self.now)[:100]
        for _at, member in due:
            del m.delayed[member]
            m.ready.append(body_of(member))
        expired = sorted((dl, member) for member, dl in m.reserved.items() if dl <= self.now)[:100]
        for _dl, member in reversed(expired):
            del m.reserved[member]
            body = body_of(member)
            m.ready.appendleft(body)
            m.crashes[body] = m.crashes.get(body, 0) + 1

    # -- rules ------------------------------------------------------------------------------------

    @rule(queue=st.sampled_from(QUEUES), n=st.integers(1, 3), duplicate=st.booleans())
    def push(self, queue: str, n: int, duplicate: bool) -> None:
        bodies = [self._new_body(duplicate) for _ in range(n)]
        self.res.push(self._name(queue), bodies)
        self.model[queue].ready.extend(bodies)
        self.pushed += n

    @rule(queue=st.sampled_from(QUEUES), delay=st.integers(1, 3000), duplicate=st.booleans())
    def later(self, queue: str, delay: int, duplicate: bool) -> None:
        body = self._new_body(duplicate)
        key = keys_of(self._name(queue))[2]
        before = set(self.client.zrange(key, 0, -1))
        self.res.later(self._name(queue), [body], delay)
        (member,) = set(self.client.zrange(key, 0, -1)) - before
        assert body_of(member) == body
        self.model[queue].delayed[member] = self.now + delay
        self.pushed += 1

    # Half the ticks land on the visibility deadline's edges, so reservations do expire (a crashed
    # worker's job coming back is the path that matters most) and "deadline == now" is exercised.
    @rule(
        dt=st.one_of(
            st.integers(0, 1500),
            st.sampled_from([VISIBILITY_MS - 1, VISIBILITY_MS, VISIBILITY_MS + 1, 2 * VISIBILITY_MS]),
        )
    )
    def tick(self, dt: int) -> None:
        self.now += dt

    def _take(self, queues: list[str], limit: int, migrate: bool = True) -> tuple[str | None, list[bytes]]:
        """The model of reserve.lua's take: migrate every listed queue (if asked), then take from the first with jobs."""
        if migrate:
            for q in queues:
                self._migrate(q)
        for q in queues:
            m = self.model[q]
            if m.ready:
                return q, [m.ready.popleft() for _ in range(min(limit, len(m.ready)))]
        return None, []

    def _check_taken(self, got: list[Reserved], queue: str | None, expected: list[bytes]) -> Any:
        if queue is None:
            assert got == []
            return multiple()
        m = self.model[queue]
        assert [r.body for r in got] == expected
        assert {r.queue for r in got} == {self._name(queue)}
        for r in got:
            assert r.crashes == m.crashes.get(r.body, 0)
            m.reserved[r.member] = self.now + VISIBILITY_MS
        return multiple(*got)

    @rule(target=held, order=st.permutations(QUEUES), k=st.integers(1, 3), limit=st.integers(1, 3))
    def reserve(self, order: list[str], k: int, limit: int) -> Any:
        queues = order[:k]
        got = self.res.reserve([self._name(q) for q in queues], limit)
        return self._check_taken(got, *self._take(queues, limit))

    @rule(target=held, done=consumes(held), limit=st.integers(0, 3), migrate=st.booleans())
    def ack_and_reserve(self, done: Reserved, limit: int, migrate: bool) -> Any:
        # The worker's fused call: acknowledge the job it finished and take the next, in one script call.
        queues = list(QUEUES)
        m = self.model[self._queue_of(done)]
        expected_held = done.member in m.reserved
        held, got = self.res.ack_and_reserve([done], [self._name(q) for q in queues], limit, migrate=migrate)
        assert held == [expected_held]
        if expected_held:
            del m.reserved[done.member]
            self.acked += 1
            if done.crashes:  # a count goes with a reservation held; one taken with none gained none
                m.crashes.pop(done.body, None)
        if limit == 0:
            assert got == []
            return multiple()
        return self._check_taken(got, *self._take(queues, limit, migrate))

    @rule(r=consumes(held))
    def give_back(self, r: Reserved) -> None:
        # A prefetched job never started: back to the front of its queue, no attempt counted.
        m = self.model[self._queue_of(r)]
        expected = r.member in m.reserved
        assert self.res.give_back([r]) == int(expected)
        if expected:
            del m.reserved[r.member]
            m.ready.appendleft(r.body)

    @rule(r=consumes(held))
    def ack(self, r: Reserved) -> None:
        m = self.model[self._queue_of(r)]
        expected = r.member in m.reserved
        assert self.res.ack(r) is expected
        if expected:
            del m.reserved[r.member]
            self.acked += 1
            m.crashes.pop(r.body, None)

    @rule(r=consumes(held), delay=st.sampled_from([0, 0, 500, 2000]))
    def release(self, r: Reserved, delay: int) -> None:
        m = self.model[self._queue_of(r)]
        new_body = r.body + b" "
        expected = r.member in m.reserved
        key = keys_of(r.queue)[2]
        before = set(self.client.zrange(key, 0, -1))
        assert self.res.release(r, new_body, delay) is expected
        if not expected:
            return
        del m.reserved[r.member]
        m.crashes.pop(r.body, None)
        if delay == 0:
            m.ready.append(new_body)
        else:
            (member,) = set(self.client.zrange(key, 0, -1)) - before
            m.delayed[member] = self.now + delay

    @rule(r=consumes(held))
    def worker_dies(self, r: Reserved) -> None:
        # The worker holding r is gone: time runs on to its deadline, and the next reserve on its
        # queue must bring the job back to the front, its crash counted.
        deadline = self.model[self._queue_of(r)].reserved.get(r.member)
        if deadline is not None:
            self.now = max(self.now, deadline)

    @rule(r=held)
    def extend(self, r: Reserved) -> None:
        m = self.model[self._queue_of(r)]
        expected = r.member in m.reserved
        assert self.res.extend(r) is expected
        if expected:
            m.reserved[r.member] = self.now + VISIBILITY_MS

    def _queue_of(self, r: Reserved) -> str:
        return r.queue[len(self.prefix) :]

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def redis_matches_model(self) -> None:
        if not hasattr(self, "client"):
            return
        for q in QUEUES:
            ready, reserved, delayed, _notify, crashes = keys_of(self._name(q))
            m = self.model[q]
            # LRANGE lists head to tail; the tail is the front of the line.
            assert list(reversed(self.client.lrange(ready, 0, -1))) == list(m.ready)
            assert {k: int(v) for k, v in self.client.zrange(reserved, 0, -1, withscores=True)} == m.reserved
            assert {k: int(v) for k, v in self.client.zrange(delayed, 0, -1, withscores=True)} == m.delayed
            assert {k: int(v) for k, v in self.client.hgetall(crashes).items()} == m.crashes

    @invariant()
    def nothing_lost_or_duplicated(self) -> None:
        if not hasattr(self, "client"):
            return
        alive = sum(len(m.ready) + len(m.reserved) + len(m.delayed) for m in self.model.values())
        assert alive + self.acked == self.pushed


ReservationMachine.TestCase.settings = settings(max_examples=examples(60), stateful_step_count=steps(40), deadline=None)
TestReservationProtocolOnFakeredis = ReservationMachine.TestCase
