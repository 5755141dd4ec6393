"""A model-based test of strict-priority takes, shared by the fakeredis and real-Redis suites.

The model is a FIFO deque per queue. Rules push (one job, several in one
call, or a hand-written job LPUSHed raw as another producer would) and take
with a random priority list. Every take must return the oldest job of the
first non-empty listed queue; after every step the server's lists must hold
exactly the model's jobs in order, so nothing is lost or duplicated.

Property tests check *what* happens, not *when*: a take on queues the model
says are empty either blocks for a tiny timeout (cheap on fakeredis) or, where
a blocking wait is costly (real Redis rounds timeouts to its event-loop tick),
checks through the server's list lengths that there is nothing to take.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from oxide.drivers.redis import RedisDriver
from oxide.drivers.reservations import keys_of
from oxide.wire import Job
from tests.conftest import redis_driver_for
from tests.jsonvalues import hand_written, json_values, names, same_job, wire_ints

QUEUES = ("high", "default", "low", "bulk")
queues = st.sampled_from(QUEUES)
priorities = st.lists(queues, min_size=1, max_size=5)  # repeats allowed: BRPOP accepts them
# Ordering does not depend on what a job carries, and the codec has its own properties: small payloads
# keep the steps cheap. Hand-written jobs (foreign_push) carry any JSON.
small_payloads = st.none() | wire_ints | st.text(max_size=8)


class PriorityMachine(RuleBasedStateMachine):
    """Strict-priority FIFO takes over several Redis lists, against a model."""

    def __init__(self, client: Any, prefix: str, *, block_on_empty: bool, driver: RedisDriver | None = None) -> None:
        super().__init__()
        self.client = client
        self.prefix = prefix
        self.block_on_empty = block_on_empty
        self.driver = redis_driver_for(client) if driver is None else driver
        self.space = self.driver.space  # the key names: plain, or hash-tagged on a cluster
        self.model: dict[str, deque[tuple[bytes, Job]]] = {q: deque() for q in QUEUES}
        self.pushed: set[bytes] = set()
        self.taken: list[bytes] = []
        self.seq = itertools.count()

    def name(self, queue: str) -> str:
        return f"{self.prefix}{queue}"

    def new_job(self, payload: Any) -> Job:
        n = next(self.seq)
        return Job("test.event", "test.Listener", {"data": payload, "seq": n}, uuid=f"job-{n}")

    def remember(self, queue: str, body: bytes, job: Job) -> None:
        assert body not in self.pushed  # bodies are unique (seq), so a duplicate take would show
        self.pushed.add(body)
        self.model[queue].append((body, job))

    @rule(queue=queues, payload=small_payloads)
    def push(self, queue: str, payload: Any) -> None:
        job = self.new_job(payload)
        body = job.to_json()
        self.driver.push(self.name(queue), body)
        self.remember(queue, body.encode(), job)

    @rule(queue=queues, payloads=st.lists(small_payloads, min_size=0, max_size=4))
    def push_many(self, queue: str, payloads: list[Any]) -> None:
        jobs = [self.new_job(p) for p in payloads]
        bodies = [j.to_json() for j in jobs]
        self.driver.push_many(self.name(queue), bodies)
        for body, job in zip(bodies, jobs, strict=True):
            self.remember(queue, body.encode(), job)

    @rule(queue=queues, data=st.data())
    def foreign_push(self, queue: str, data: st.DataObject) -> None:
        n = next(self.seq)
        job = Job(data.draw(names), data.draw(names), {"data": data.draw(json_values(3)), "seq": n}, uuid=f"job-{n}")
        body = data.draw(hand_written(job)).encode("utf-8")
        self.client.lpush(self.space.base(self.name(queue)), body)
        self.remember(queue, body, job)

    @rule(priority=priorities)
    def take(self, priority: list[str]) -> None:
        expected_queue = next((q for q in priority if self.model[q]), None)
        keys = [self.name(q) for q in priority]
        if expected_queue is None:
            if self.block_on_empty:
                assert self.driver.pop(keys, 0.001) is None
            else:
                assert all(self.driver.size(k) == 0 for k in keys)
            return
        delivery = self.driver.pop(keys, 5)
        body, job = self.model[expected_queue].popleft()
        assert delivery is not None
        assert (delivery.queue, delivery.body, delivery.expirations) == (self.name(expected_queue), body, 0)
        assert same_job(Job.from_json(delivery.body), job)
        # Held until acknowledged: the job sits in the queue's reserved set, and leaves it on ack.
        assert self.driver.ack(delivery) is True
        self.taken.append(delivery.body)

    @precondition(lambda self: any(self.model.values()))
    @rule(priority=priorities)
    def drain(self, priority: list[str]) -> None:
        """Take until the listed queues are empty: the order across queues is the priority order."""
        while any(self.model[q] for q in priority):
            self.take(priority)

    @invariant()
    def server_holds_exactly_the_model(self) -> None:
        stored: list[bytes] = []
        for queue, jobs in self.model.items():
            in_list = self.client.lrange(self.space.base(self.name(queue)), 0, -1)
            assert list(reversed(in_list)) == [body for body, _ in jobs], queue
            stored.extend(in_list)
        # Nothing lost, nothing duplicated: what was delivered plus what the server holds is what was pushed.
        seen = self.taken + stored
        assert len(seen) == len(set(seen)), "a job was delivered or stored twice"
        assert set(seen) == self.pushed, "a job was lost, or one appeared that nobody pushed"

    def teardown(self) -> None:
        keys = [key for q in QUEUES for key in keys_of(self.name(q), self.space)]
        self.client.delete(*keys)
