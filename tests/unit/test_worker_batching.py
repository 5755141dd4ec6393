"""The worker's hot path on the real RedisDriver (over fakeredis): one script call per job, prefetch, give-back."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from oxide.drivers.redis import RedisDriver
from oxide.drivers.reservations import keys_of
from oxide.worker import StopReason, Worker, WorkerOptions
from tests.conftest import redis_driver_for
from tests.worker_support import Harness, greet, make_harness


@pytest.fixture
def h(fake_redis: Any) -> Harness:
    return make_harness(fake_redis)


def real_driver(h: Harness) -> RedisDriver:
    # The harness's InstantDriver hides the batching methods; this is the real driver, with a short idle wait.
    return redis_driver_for(h.driver.client, poll_interval_secs=0.01)


def count_script_calls(driver: RedisDriver) -> dict[str, int]:
    calls: dict[str, int] = {}
    scripts = driver.scripts._scripts
    for name, script in list(scripts.items()):

        def counted(*args: Any, _name: str = name, _script: Any = script, **kwargs: Any) -> Any:
            calls[_name] = calls.get(_name, 0) + 1
            return _script(*args, **kwargs)

        scripts[name] = counted
    # The busy take (take.lua) goes by the driver's lane, a script made per list of queues: count those too.
    make_take = driver.scripts._take_script

    class CountedTake:
        """take.lua as the driver calls it: with its varying arguments, or packed whole (send)."""

        def __init__(self, script: Any) -> None:
            self.script = script

        def __call__(self, tail: Any) -> Any:
            calls["take"] = calls.get("take", 0) + 1
            return self.script(tail)

        def send(self, command: bytes) -> Any:
            calls["take"] = calls.get("take", 0) + 1
            return self.script.send(command)

    def counted_take(queues: tuple[str, ...]) -> Any:
        script, *rest = make_take(queues)
        return (CountedTake(script), *rest)

    driver.scripts._take_script = counted_take  # type: ignore[method-assign]
    return calls


def worker(h: Harness, driver: RedisDriver, queues: list[str], **options: Any) -> Worker:
    options.setdefault("stop_when_empty", True)
    return h.worker(queues, WorkerOptions(**options), driver=driver)


def test_each_job_costs_one_script_call_that_also_acknowledges_the_previous_one(h: Harness) -> None:
    driver = real_driver(h)
    calls = count_script_calls(driver)
    h.push("low", *(greet(f"j{n}") for n in range(5)))
    assert worker(h, driver, ["high", "low"]).run() is StopReason.QUEUE_EMPTY
    assert h.recorder.seen == [f"j{n}" for n in range(5)]
    assert "ack" not in calls  # every acknowledgement rode on a take
    # five takes that found a job; then the empty one (which acknowledged the last job), a look for
    # due jobs (that take had skipped it), and the retry after the idle wait. The first take and the
    # two after the empty one are the whole reserve script; the others the busy worker's take.
    assert calls["reserve"] + calls["take"] == 8
    assert calls["take"] == 5
    assert h.driver.client.zcard(keys_of("low")[1]) == 0  # nothing left reserved: all acknowledged


def test_process_called_directly_acknowledges_at_once(h: Harness) -> None:
    driver = real_driver(h)
    h.push("low", greet("solo"))
    delivery = driver.pop(["low"], 0.01)
    assert delivery is not None
    assert worker(h, driver, ["low"]).process(delivery)
    assert h.driver.client.zcard(keys_of("low")[1]) == 0


def test_prefetch_takes_a_batch_in_one_call_and_keeps_fifo(h: Harness) -> None:
    driver = real_driver(h)
    calls = count_script_calls(driver)
    h.push("low", *(greet(f"j{n}") for n in range(6)))
    worker(h, driver, ["high", "low"], prefetch=3).run()
    assert h.recorder.seen == [f"j{n}" for n in range(6)]
    # two batches of three, then the empty take, its look for due jobs, its retry
    assert calls["reserve"] + calls["take"] == 5
    assert h.driver.client.zcard(keys_of("low")[1]) == 0


def test_a_prefetched_batch_delays_a_new_higher_priority_job_until_it_is_done(h: Harness) -> None:
    # The documented trade-off of --prefetch: the batch in hand is finished first.
    driver = real_driver(h)
    h.push("low", greet("low0"), greet("low1"), greet("low2"))

    def push_high(event: Any) -> None:
        if event.name == "low0":
            h.push("high", greet("urgent"))

    h.recorder.on_handle = push_high
    worker(h, driver, ["high", "low"], prefetch=2).run()
    assert h.recorder.seen == ["low0", "low1", "urgent", "low2"]


def test_jobs_not_started_go_back_to_the_front_in_order_without_an_attempt(h: Harness) -> None:
    driver = real_driver(h)
    h.push("low", *(greet(f"j{n}") for n in range(6)))
    w = worker(h, driver, ["low"], prefetch=4, stop_when_empty=False)
    h.recorder.on_handle = lambda event: w.stop()
    assert w.run() is StopReason.INTERRUPTED
    assert h.recorder.seen == ["j0"]
    client = h.driver.client
    ready, reserved, _delayed, _notify, crashes = keys_of("low")
    assert client.zcard(reserved) == 0  # j0 acknowledged, j1..j3 given back
    assert client.hlen(crashes) == 0  # no attempt counted for the jobs given back
    h.recorder.on_handle = None
    worker(h, real_driver(h), ["low"]).run()
    assert h.recorder.seen == ["j0"] + [f"j{n}" for n in range(1, 6)]
    assert client.llen(ready) == 0


def test_max_jobs_caps_the_batch_so_nothing_is_taken_in_vain(h: Harness) -> None:
    driver = real_driver(h)
    calls = count_script_calls(driver)
    h.push("low", *(greet(f"j{n}") for n in range(6)))
    assert worker(h, driver, ["low"], prefetch=50, max_jobs=2, stop_when_empty=False).run() is StopReason.MAX_JOBS
    assert "give_back" not in calls
    assert h.driver.client.llen(keys_of("low")[0]) == 4


def test_a_prefetched_job_whose_reservation_expired_is_not_run(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    driver = real_driver(h)
    h.push("low", greet("j0"), greet("j1"))
    client = h.driver.client
    reserved = keys_of("low")[1]

    def expire_the_rest(event: Any) -> None:
        if event.name == "j0":
            # Long enough for a refresh, and meanwhile j1's reservation expired (another worker may run it).
            h.clock.advance(60.0)
            for member in client.zrange(reserved, 0, -1):
                if b'"name":"j1"' in member:
                    client.zrem(reserved, member)

    h.recorder.on_handle = expire_the_rest
    w = worker(h, driver, ["low"], prefetch=2, max_jobs=2, stop_when_empty=False)
    with caplog.at_level(logging.WARNING, logger="oxide.worker"):
        w._cycle()
        w._cycle()
    assert h.recorder.seen == ["j0"]
    assert "reservation expired before it started" in caplog.text


def test_bad_prefetch_is_refused() -> None:
    from oxide import OxideError

    with pytest.raises(OxideError, match="prefetch"):
        WorkerOptions(prefetch=0)
