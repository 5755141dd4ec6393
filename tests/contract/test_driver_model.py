"""A stateful model of the Driver protocol, run against every backend of ``driver_under_test``.

Two workers push, take, acknowledge, release, extend and let time pass on a fake
clock; after every step each reply and every queue's size is compared with a
plain-Python model of what the contract promises:

- a queue is a line; a take migrates every queue it names first (due delayed jobs
  join the back, oldest due first; expired reservations return to the front,
  oldest deadline first, their expirations counted), then takes the head of the
  first non-empty queue in the order given;
- ack/release/extend hold only while the reservation does; afterwards they return
  False and change nothing.

Where the contract leaves a choice to the backend, the model allows each answer:
jobs due (or expired) at the same millisecond form one group in the line whose
inner order is the backend's tie-break (Redis sorts members, the database ids);
and Redis keys a job's expiration count by its body and clears it when a late
ack arrives, so after a late ack the model expects at most its own count.
Bodies are unique here; identical bodies are covered by the behaviour suite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from oxide.drivers import Delivery, Driver
from tests.contract.conftest import DriverUnderTest
from tests.hypothesis_profiles import examples, steps

QUEUES = ("high", "default", "low")
EMPTY = 0.01


@dataclass
class JobModel:
    expirations: int = 0
    exact: bool = True  # False after a late ack: Redis may have cleared the count


@dataclass
class QueueModel:
    line: list[list[bytes]] = field(default_factory=list)  # groups, front first; order inside a group is free
    held: dict[Delivery, int] = field(default_factory=dict)  # live reservation -> deadline (ms)
    delayed: list[tuple[int, bytes]] = field(default_factory=list)  # (due ms, body)

    def waiting(self) -> int:
        return sum(len(group) for group in self.line)


def _groups(items: list[tuple[int, bytes]]) -> list[list[bytes]]:
    """Bodies grouped by time, earliest first: one group per millisecond."""
    out: dict[int, list[bytes]] = {}
    for at, body in sorted(items, key=lambda item: item[0]):
        out.setdefault(at, []).append(body)
    return list(out.values())


class DriverProtocolMachine(RuleBasedStateMachine):
    """The contract as a model; ``dut`` is set by the test for each backend."""

    dut: ClassVar[DriverUnderTest]
    workers: ClassVar[list[Driver]]  # two workers, each with its own connection
    held = Bundle("held")

    @initialize()
    def setup(self) -> None:
        self.names = dict(zip(QUEUES, self.dut.fresh_queues(*QUEUES), strict=True))
        self.queue_of = {name: q for q, name in self.names.items()}
        self.model = {q: QueueModel() for q in QUEUES}
        self.jobs: dict[bytes, JobModel] = {}
        self.counter = 0
        self.visibility_ms = round(self.dut.visibility_secs * 1000)

    @property
    def now(self) -> int:
        return self.dut.clock.now_ms

    def _new_bodies(self, n: int) -> list[bytes]:
        bodies = []
        for _ in range(n):
            self.counter += 1
            body = b'{"job":%d}' % self.counter
            self.jobs[body] = JobModel()
            bodies.append(body)
        return bodies

    def _migrate(self, queue: str) -> None:
        m = self.model[queue]
        due = [(at, body) for at, body in m.delayed if at <= self.now]
        m.delayed = [(at, body) for at, body in m.delayed if at > self.now]
        m.line.extend(_groups(due))
        expired = [(deadline, d) for d, deadline in m.held.items() if deadline <= self.now]
        for _deadline, delivery in expired:
            del m.held[delivery]
            self.jobs[delivery.body].expirations += 1
        m.line[:0] = _groups([(deadline, d.body) for deadline, d in expired])

    # -- rules ------------------------------------------------------------------------------------

    @rule(queue=st.sampled_from(QUEUES), n=st.integers(1, 3), worker=st.integers(0, 1), many=st.booleans())
    def push(self, queue: str, n: int, worker: int, many: bool) -> None:
        bodies = self._new_bodies(n)
        driver = self.workers[worker]
        if many:
            driver.push_many(self.names[queue], [b.decode() for b in bodies])
        else:
            for body in bodies:
                driver.push(self.names[queue], body.decode())
        self.model[queue].line.extend([b] for b in bodies)

    @rule(queue=st.sampled_from(QUEUES), n=st.integers(1, 2), delay_ms=st.integers(1, 3000))
    def later(self, queue: str, n: int, delay_ms: int) -> None:
        bodies = self._new_bodies(n)
        self.workers[0].later(self.names[queue], [b.decode() for b in bodies], delay_ms / 1000)
        self.model[queue].delayed.extend((self.now + delay_ms, b) for b in bodies)

    @rule(dt_ms=st.sampled_from([0, 1, 9_999, 10_000, 10_001]) | st.integers(2, 4000))
    def tick(self, dt_ms: int) -> None:
        self.dut.clock.advance(dt_ms / 1000)

    @rule(target=held, order=st.permutations(QUEUES), k=st.integers(1, 3), worker=st.integers(0, 1))
    def take(self, order: list[str], k: int, worker: int) -> object:
        queues = order[:k]
        got = self.workers[worker].pop([self.names[q] for q in queues], EMPTY)
        for q in queues:
            self._migrate(q)
        expected_queue = next((q for q in queues if self.model[q].line), None)
        if expected_queue is None:
            assert got is None
            return multiple()
        assert got is not None, f"expected a job from {expected_queue}"
        assert got.queue == self.names[expected_queue]
        m = self.model[expected_queue]
        front = m.line[0]
        assert got.body in front, f"took {got.body!r}; the front of the line is {front!r}"
        front.remove(got.body)
        if not front:
            m.line.pop(0)
        job = self.jobs[got.body]
        if job.exact:
            assert got.expirations == job.expirations
        else:
            assert got.expirations <= job.expirations
        m.held[got] = self.now + self.visibility_ms
        return got

    @rule(delivery=consumes(held), worker=st.integers(0, 1))
    def ack(self, delivery: Delivery, worker: int) -> None:
        m = self.model[self.queue_of[delivery.queue]]
        live = delivery in m.held
        assert self.workers[worker].ack(delivery) is live
        if live:
            del m.held[delivery]
            del self.jobs[delivery.body]
        elif delivery.body in self.jobs:
            self.jobs[delivery.body].exact = False

    @rule(delivery=consumes(held), delay_ms=st.sampled_from([0, 0, 500, 2000]))
    def release(self, delivery: Delivery, delay_ms: int) -> None:
        m = self.model[self.queue_of[delivery.queue]]
        live = delivery in m.held
        [body] = self._new_bodies(1)
        assert self.workers[0].release(delivery, body.decode(), delay_ms / 1000) is live
        if not live:
            del self.jobs[body]
            return
        del m.held[delivery]
        del self.jobs[delivery.body]
        if delay_ms == 0:
            m.line.append([body])
        else:
            m.delayed.append((self.now + delay_ms, body))

    @rule(delivery=held, worker=st.integers(0, 1))
    def extend(self, delivery: Delivery, worker: int) -> None:
        m = self.model[self.queue_of[delivery.queue]]
        live = delivery in m.held
        assert self.workers[worker].extend(delivery) is live
        if live:
            m.held[delivery] = self.now + self.visibility_ms

    # -- invariants ---------------------------------------------------------------------------------

    @invariant()
    def sizes_match(self) -> None:
        if not hasattr(self, "model"):
            return
        for q in QUEUES:
            assert self.workers[1].size(self.names[q]) == self.model[q].waiting(), q


def test_the_driver_protocol_matches_its_model(driver_under_test: DriverUnderTest) -> None:
    workers = [driver_under_test.driver, driver_under_test.another()]
    machine = type("Machine", (DriverProtocolMachine,), {"dut": driver_under_test, "workers": workers})
    run_state_machine_as_test(
        machine,  # type: ignore[arg-type]
        settings=settings(max_examples=examples(25), stateful_step_count=steps(30), deadline=None, database=None),
    )
