"""Strict priority with several slots: a stateful model of the take loop, on fakeredis.

The worker runs with N slots (threads), its loop turned one step at a time by
the test; each listener waits until the test lets it finish, so which jobs are
in flight at every take is the model's choice, not the scheduler's. Rules push
jobs to any queue, turn the loop, and let any running job end. Every take must:

- ask for no more jobs than there are free slots;
- return the oldest jobs of the first non-empty queue in priority order, as
  many as it asked for or as that queue holds: never a job of a lower queue
  while a higher one has a job ready.

At the end every job pushed has run exactly once or is still queued.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import fakeredis
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from oxide import App, Event, Mode
from oxide.config import ConnectionConfig
from oxide.drivers import Delivery
from oxide.drivers.redis import RedisDriver
from oxide.wire import Job
from oxide.worker import Worker, WorkerOptions
from tests.hypothesis_profiles import steps
from tests.worker_support import make_config

QUEUES = ("high", "default", "low")
LISTENER = "tests.property.test_worker_slots_priority.Gate"


@dataclass
class Held(Event):
    event_name = "test.held"
    token: str


@dataclass
class Gate:
    """Each job's listener waits for the test to open its gate; records starts and ends."""

    gates: dict[str, threading.Event] = field(default_factory=dict)
    ended: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def gate(self, token: str) -> threading.Event:
        with self.lock:
            return self.gates.setdefault(token, threading.Event())

    def handle(self, event: Held) -> None:
        if not self.gate(event.token).wait(30):
            raise AssertionError(f"gate of {event.token} never opened")
        with self.lock:
            self.ended.append(event.token)


def wait_for(condition: Any, what: str) -> None:
    """A liveness bound for a thread to get somewhere, never a timing assertion."""
    deadline = time.monotonic() + 10
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)


class SlotsMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
        config = ConnectionConfig(
            name="redis", driver="redis", block_timeout_secs=0.01, poll_interval_secs=0.01, visibility_timeout_secs=60
        )
        self.driver = RedisDriver(config, client=self.client)
        self.model: dict[str, deque[str]] = {q: deque() for q in QUEUES}
        self.pushed: list[str] = []
        self.taken: list[str] = []
        self.violations: list[str] = []
        self.gate = Gate()
        app = App(config=make_config())
        app.listen(Held, self.gate, Mode.queue("redis"))
        self.worker: Worker | None = None
        self.app = app
        self._take = self.driver.take
        self.driver.take = self.checked_take  # type: ignore[method-assign]

    @rule(slots=st.integers(2, 4))
    @precondition(lambda self: self.worker is None)
    def start(self, slots: int) -> None:
        worker = Worker(
            self.app,
            "redis",
            QUEUES,
            WorkerOptions(concurrency=slots, handle_signals=False),
            failer=lambda record: self.violations.append(f"failed: {record.exception}"),
            driver=self.driver,
        )
        worker._outcomes.deferring = True  # as run() does: acknowledgements ride on the next take
        self.worker = worker

    def checked_take(self, queues: Any, timeout_secs: float, *, limit: int = 1, done: Any = ()) -> Any:
        assert self.worker is not None
        free = self.worker.concurrency - len(self.worker._busy)
        if limit > free:
            self.violations.append(f"asked for {limit} jobs with {free} free slot(s)")
        held, taken = self._take(queues, timeout_secs, limit=limit, done=done)
        self.check_taken(taken, limit)
        return held, taken

    def check_taken(self, taken: list[Delivery], limit: int) -> None:
        first = next((q for q in QUEUES if self.model[q]), None)
        if first is None:
            if taken:
                self.violations.append(f"took {len(taken)} job(s) from queues the model says are empty")
            return
        expected = [self.model[first][i] for i in range(min(limit, len(self.model[first])))]
        got = [(d.queue, Job.from_json(d.body).payload["token"]) for d in taken]
        if got != [(first, token) for token in expected]:
            self.violations.append(f"expected {expected} from {first}, got {got}")
        for _ in expected:
            self.taken.append(self.model[first].popleft())

    @rule(queue=st.sampled_from(QUEUES), count=st.integers(1, 3))
    def push(self, queue: str, count: int) -> None:
        tokens = [f"j{len(self.pushed) + i}" for i in range(count)]
        self.pushed += tokens
        self.model[queue].extend(tokens)
        self.driver.push_many(queue, [Job(Held.event_name, LISTENER, {"token": t}, uuid=t).to_json() for t in tokens])

    @precondition(
        lambda self: (
            self.worker is not None
            and (len(self.worker._busy) < self.worker.concurrency or not self.worker._completions.empty())
        )
    )
    @rule()
    def turn(self) -> None:
        assert self.worker is not None
        self.worker._cycle()

    @precondition(lambda self: self.worker is not None and bool(self.running()))
    @rule(data=st.data())
    def finish(self, data: st.DataObject) -> None:
        token = data.draw(st.sampled_from(self.running()))
        ended = len(self.gate.ended)
        self.gate.gate(token).set()
        wait_for(lambda: len(self.gate.ended) > ended, f"{token} to end")
        assert self.worker is not None
        wait_for(lambda: not self.worker._completions.empty(), f"{token}'s outcome")

    def running(self) -> list[str]:
        return sorted(t for t in self.taken if not self.gate.gate(t).is_set())

    @invariant()
    def takes_follow_priority_and_slots(self) -> None:
        assert self.violations == []
        if self.worker is not None:
            assert len(self.worker._busy) <= self.worker.concurrency

    def teardown(self) -> None:
        worker = self.worker
        try:
            if worker is not None:
                for token in self.taken:
                    self.gate.gate(token).set()
                wait_for(lambda: not worker._busy or not worker._completions.empty(), "the last jobs to end")
                while worker._busy:
                    worker._collect(1.0)
                worker._outcomes.deferring = False
                worker._settle()
                left = sorted(
                    Job.from_json(body).payload["token"]
                    for q in QUEUES
                    for body in self.client.lrange(f"oxide:queue:{q}", 0, -1)
                )
                assert sorted(self.gate.ended) == sorted(self.taken)
                assert len(set(self.gate.ended)) == len(self.gate.ended)
                assert sorted(self.gate.ended + left) == sorted(self.pushed)
                assert self.client.zcard("oxide:queue:high:reserved") == 0
        finally:
            for gate in self.gate.gates.values():
                gate.set()
            if worker is not None:
                worker._supervisor.close()
                worker._threads.close()


SlotsMachine.TestCase.settings = settings(max_examples=steps(40), stateful_step_count=30, deadline=None)
TestStrictPriorityWithSlots = SlotsMachine.TestCase
