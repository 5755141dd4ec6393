"""Strict priority and FIFO on the real Redis server: the model-based machine, and real blocking."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest
import redis
from hypothesis.stateful import run_state_machine_as_test

from oxide import App, Event, Mode
from oxide.config import ConnectionConfig, load_config
from oxide.drivers import Delivery
from oxide.drivers.redis import RedisDriver, queue_key
from oxide.wire import Job
from tests.conftest import redis_driver_for
from tests.priority_model import PriorityMachine

pytestmark = [pytest.mark.redis, pytest.mark.usefixtures("isolated_cwd")]


def test_priority_ordering_on_real_redis(real_redis: Any, key_prefix: str) -> None:
    examples = itertools.count()

    def fresh() -> PriorityMachine:
        # Each example has its own queue names under this test's prefix and deletes them at teardown.
        # Takes on empty queues are checked through LLEN: Redis rounds a blocking timeout up to its
        # event-loop tick, which would make each one cost about 100 ms (blocking is tested below).
        return PriorityMachine(real_redis, f"{key_prefix}{next(examples)}-", block_on_empty=False)

    run_state_machine_as_test(fresh)


def test_take_from_empty_queues_returns_none_after_the_timeout(real_redis: Any, make_queue_names: Any) -> None:
    driver = redis_driver_for(real_redis)
    assert driver.pop(make_queue_names("a", "b"), 0.01) is None


def _wait_until_blocked(watcher: Any, client_name: str) -> None:
    """Poll CLIENT LIST until the named client sits in a blocking command (flag 'b')."""
    for _ in range(5000):
        for info in watcher.client_list():
            if info.get("name") == client_name and "b" in info.get("flags", ""):
                return
        threading.Event().wait(0.001)
    raise AssertionError(f"client {client_name} never blocked")


@pytest.mark.parametrize("woken_by", ["high", "low"])
def test_a_blocked_take_is_woken_by_a_push_onto_any_listed_queue(
    redis_server_url: str, real_redis: Any, key_prefix: str, make_queue_names: Any, woken_by: str
) -> None:
    high, low = make_queue_names("high", "low")
    taker_client = redis.Redis.from_url(redis_server_url)
    name = f"oxide-test-{key_prefix}taker"
    taker_client.client_setname(name)
    driver = redis_driver_for(taker_client)
    result: list[Delivery | None] = []
    taker = threading.Thread(target=lambda: result.append(driver.pop([high, low], 30)))
    taker.start()
    try:
        _wait_until_blocked(real_redis, name)
        target = high if woken_by == "high" else low
        real_redis.lpush(queue_key(target), b"woke")
    finally:
        taker.join(timeout=60)
        taker_client.close()
    assert result == [Delivery(target, b"woke")]


def test_driver_built_from_config_talks_to_the_server(
    redis_server_url: str, real_redis: Any, make_queue_names: Any
) -> None:
    # real_redis: this test's keys (the reservations its pops leave) are deleted afterwards.
    [queue] = make_queue_names("configured")
    driver = RedisDriver(ConnectionConfig(name="redis", driver="redis", url=redis_server_url, block_timeout_secs=1))
    try:
        driver.push_many(queue, ["1", "2"])
        driver.push(queue, "3")
        assert driver.size(queue) == 3
        assert [driver.pop([queue], 1) for _ in range(3)] == [Delivery(queue, str(i).encode()) for i in (1, 2, 3)]
    finally:
        driver.close()


class Signup(Event):
    event_name = "it.signup"

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id

    def to_payload(self) -> Any:
        return {"user_id": self.user_id}

    @classmethod
    def from_payload(cls, payload: Any) -> Signup:
        return cls(payload["user_id"])


class Welcome:
    seen: ClassVar[list[int]] = []  # what every instance handled, for the test to read

    def handle(self, event: Signup) -> None:
        Welcome.seen.append(event.user_id)


def test_dispatch_push_take_and_run_on_the_real_server(
    tmp_path: Path, redis_server_url: str, real_redis: Any, make_queue_names: Any
) -> None:
    [emails] = make_queue_names("emails")
    app = App(config=load_config(tmp_path, environ={"QUEUE_CONNECTION": "redis", "REDIS_URL": redis_server_url}))
    app.listen(Signup, Welcome, Mode.queue().on_queue(emails))
    Welcome.seen.clear()
    try:
        for user_id in (1, 2):
            app.dispatch(Signup(user_id))
        assert Welcome.seen == []
        driver = app.driver()
        for _ in range(2):
            delivery = driver.pop([emails], 1)
            assert delivery is not None
            job, registration, event = app.decode(delivery.body)
            registration.make_listener().handle(event)
            assert job.listener_type == "tests.integration.test_redis_ordering.Welcome"
        assert Welcome.seen == [1, 2]
        assert real_redis.llen(queue_key(emails)) == 0
    finally:
        app.close()


def test_a_job_we_write_is_plain_serde_json_on_the_server(real_redis: Any, make_queue_names: Any) -> None:
    [queue] = make_queue_names("raw")
    job = Job("e", "l", {"b": 1.0, "a": "é"})
    redis_driver_for(real_redis).push(queue, job.to_json())
    assert (
        real_redis.rpop(queue_key(queue))
        == '{"event_name":"e","listener_type":"l","payload":{"a":"é","b":1.0}}'.encode()
    )
