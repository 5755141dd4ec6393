"""Properties of the worker loop checked against a model of the queues (fakeredis, fake clock).

Every take must return the oldest job of the first non-empty queue in priority order, even while
listeners push more jobs; every job taken is run or recorded as failed exactly once; the loop stops
for the reason its options say.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import fakeredis
from hypothesis import given, settings
from hypothesis import strategies as st

from oxide.drivers import Delivery
from oxide.wire import Job
from oxide.worker import StopReason, Worker, WorkerOptions
from tests.hypothesis_profiles import examples
from tests.worker_support import EXPLODE, RECORDER, Harness, make_harness

KINDS = ("ok", "ok", "ok", "raises", "not_json", "unknown_listener", "bad_payload")
QUEUE_NAMES = ("q0", "q1", "q2", "q3")


def body_for(kind: str, token: str) -> str:
    if kind == "ok":
        return Job("test.greeted", RECORDER, {"name": token}, uuid=token).to_json()
    if kind == "raises":
        return Job("test.greeted", EXPLODE, {"name": token}, uuid=token).to_json()
    if kind == "not_json":
        return f"{{{token} is not json"
    if kind == "unknown_listener":
        return Job("test.greeted", "app.Gone", {"name": token}, uuid=token).to_json()
    return Job("test.greeted", RECORDER, {"wrong": token}, uuid=token).to_json()


class Model:
    """What the queues should hold: pushes go on the right, the oldest job is on the left."""

    def __init__(self, h: Harness, queues: Sequence[str]) -> None:
        self.h = h
        self.queues = list(queues)
        self.ready: dict[str, deque[tuple[str, str]]] = {q: deque() for q in queues}
        self.kinds: dict[str, str] = {}
        self.taken: list[str] = []
        self.violations: list[str] = []

    def push(self, queue: str, kind: str) -> None:
        token = f"j{len(self.kinds)}"
        self.kinds[token] = kind
        body = body_for(kind, token)
        self.ready[queue].append((token, body))
        self.h.push(queue, body)

    def check_take(self, delivery: Delivery | None) -> None:
        expected_queue = next((q for q in self.queues if self.ready[q]), None)
        if expected_queue is None:
            if delivery is not None:
                self.violations.append(f"took {delivery.body!r} from queues the model says are empty")
            return
        token, body = self.ready[expected_queue].popleft()
        if delivery is None or (delivery.queue, delivery.body) != (expected_queue, body.encode()):
            self.violations.append(f"expected {token} from {expected_queue}, got {delivery}")
        self.taken.append(token)


def token_of_raw(payload: str) -> str:
    """The token inside a ``not_json`` body, which a failed job keeps whole."""
    return payload[1:].split(" ", 1)[0]


def spawn_rule(kind_index: int) -> tuple[int, str]:
    return kind_index % 4, KINDS[kind_index % len(KINDS)]


jobs = st.lists(st.tuples(st.integers(0, 3), st.sampled_from(KINDS)), max_size=25)
spawns = st.lists(st.lists(st.integers(0, 100), max_size=3), max_size=25)


def run_model(
    initial: list[tuple[int, str]], spawned: list[list[int]], queue_count: int, options: WorkerOptions
) -> tuple[Harness, Model, Worker, StopReason]:
    h = make_harness(fakeredis.FakeRedis(server=fakeredis.FakeServer()))
    queues = QUEUE_NAMES[:queue_count]
    model = Model(h, queues)
    for index, kind in initial:
        model.push(queues[index % queue_count], kind)
    pop = h.driver.pop

    def checked_pop(names: Any, timeout_secs: float) -> Delivery | None:
        delivery = pop(names, timeout_secs)
        model.check_take(delivery)
        return delivery

    runs = iter(spawned)

    def producer_inside_listener(event: Any) -> None:
        # Listeners that dispatch more work: new jobs land while the worker is mid-run.
        for value in next(runs, []):
            index, kind = spawn_rule(value)
            model.push(queues[index % queue_count], kind)

    h.driver.pop = checked_pop  # type: ignore[method-assign]
    h.recorder.on_handle = producer_inside_listener
    worker = h.worker(queues, options)
    return h, model, worker, worker.run()


@settings(max_examples=examples(150), deadline=None)
@given(initial=jobs, spawned=spawns, queue_count=st.integers(1, 4))
def test_every_take_is_the_oldest_job_of_the_first_non_empty_queue(
    initial: list[tuple[int, str]], spawned: list[list[int]], queue_count: int
) -> None:
    h, model, worker, reason = run_model(initial, spawned, queue_count, WorkerOptions(stop_when_empty=True))
    assert model.violations == []
    assert reason is StopReason.QUEUE_EMPTY
    # Drained, and each job ran or failed exactly once according to its kind.
    assert all(not q for q in model.ready.values())
    assert sorted(model.taken) == sorted(model.kinds)
    assert h.recorder.seen == [t for t in model.taken if model.kinds[t] == "ok"]
    failed_tokens = [r.uuid if r.uuid in model.kinds else token_of_raw(r.payload) for r in h.failed]
    assert failed_tokens == [t for t in model.taken if model.kinds[t] != "ok"]
    assert worker.jobs_processed == len(model.taken)
    assert worker.jobs_failed == len(failed_tokens)


@settings(max_examples=examples(100), deadline=None)
@given(initial=jobs, queue_count=st.integers(1, 4), max_jobs=st.integers(1, 30))
def test_max_jobs_takes_exactly_that_many_or_the_whole_backlog(
    initial: list[tuple[int, str]], queue_count: int, max_jobs: int
) -> None:
    options = WorkerOptions(stop_when_empty=True, max_jobs=max_jobs)
    h, model, worker, reason = run_model(initial, [], queue_count, options)
    assert model.violations == []
    assert len(model.taken) == worker.jobs_processed == min(max_jobs, len(initial))
    assert reason is (StopReason.MAX_JOBS if len(initial) >= max_jobs else StopReason.QUEUE_EMPTY)
    left = sum(h.remaining(q) for q in QUEUE_NAMES[:queue_count])
    assert left == len(initial) - len(model.taken)
