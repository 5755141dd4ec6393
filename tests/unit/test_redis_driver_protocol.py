"""The redis driver's Python side, call by call, on fakeredis with a fake clock far from the real one.

Each test names what a caller sees: where a job is after release, give_back or a
due delay, which reservation flags come back, how the client is built. The fake
clock starts in 2033, so a script that read the server's time instead of the
clock passed in would put every deadline in the wrong place.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest

from oxide.config import ConnectionConfig
from oxide.drivers import Delivery
from oxide.drivers.redis import RedisDriver, connect, queue_key
from oxide.drivers.reservations import Reservations, keys_of

START_MS = 2_000_000_000_000  # 2033-05-18, far from the real clock
VISIBILITY_SECS = 30.0


class Clock:
    def __init__(self) -> None:
        self.ms = START_MS

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
def client() -> Iterator[Any]:
    c = fakeredis.FakeRedis()
    yield c
    c.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def driver_on(client: Any, clock: Clock | None = None, **settings: Any) -> RedisDriver:
    settings.setdefault("visibility_timeout_secs", VISIBILITY_SECS)
    return RedisDriver(ConnectionConfig(name="redis", driver="redis", **settings), client=client, clock_ms=clock)


def ready(client: Any, queue: str = "q") -> list[bytes]:
    """The queue's ready jobs, next to be taken first."""
    return list(reversed(client.lrange(queue_key(queue), 0, -1)))


def delayed(client: Any, queue: str = "q") -> list[tuple[bytes, float]]:
    """The queue's delayed jobs (body without its token) and when each is due."""
    return [
        (member.split(b"|", 1)[1], score) for member, score in client.zrange(keys_of(queue)[2], 0, -1, withscores=True)
    ]


def test_connect_builds_a_client_that_fails_fast_and_never_retries_on_its_own() -> None:
    client = connect("redis://127.0.0.1:1/0", read_timeout_secs=7)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["socket_connect_timeout"], kwargs["socket_timeout"]) == (5, 7)
    assert kwargs["socket_keepalive"] is True
    assert kwargs["retry_on_timeout"] is False
    client.close()


def test_the_drivers_socket_outlives_its_longest_blocking_wait() -> None:
    driver = RedisDriver(
        ConnectionConfig(name="redis", driver="redis", url="redis://127.0.0.1:1/0", block_timeout_secs=5)
    )
    assert driver.client.connection_pool.connection_kwargs["socket_timeout"] == 15
    driver.close()


def test_a_visibility_timeout_under_a_second_still_reserves(client: Any) -> None:
    driver = driver_on(client, visibility_timeout_secs=0.5)
    assert driver.reserving is True
    driver.push("q", "job")
    delivery = driver.pop(["q"], 0)
    assert delivery is not None
    assert delivery.receipt is not None


def test_a_delay_under_a_second_waits_in_the_delayed_set(client: Any, clock: Clock) -> None:
    driver_on(client, clock).later("q", ["soon"], 0.5)
    assert ready(client) == []
    assert delayed(client) == [(b"soon", START_MS + 500)]


def test_times_come_from_the_clock_given_not_the_servers(client: Any, clock: Clock) -> None:
    driver = driver_on(client, clock)
    driver.later("q", ["later"], 2)
    assert delayed(client) == [(b"later", START_MS + 2000)]
    assert driver.pop(["q"], 0) is None  # not due by the fake clock, though long past by the server's
    clock.ms += 2000
    delivery = driver.pop(["q"], 0)
    assert delivery is not None
    assert delivery.body == b"later"
    reserved = client.zrange(keys_of("q")[1], 0, -1, withscores=True)
    assert [score for _, score in reserved] == [START_MS + 2000 + VISIBILITY_SECS * 1000]


def test_release_queues_the_new_body_now_or_after_its_delay(client: Any, clock: Clock) -> None:
    driver = driver_on(client, clock)
    driver.push_many("q", ["first", "second"])
    one, two = driver.take(["q"], 0, limit=2)[1]
    assert driver.release(one, "first, attempt 2", 0) is True
    assert ready(client) == [b"first, attempt 2"]
    assert driver.release(two, "second, attempt 2", 1.5) is True
    assert delayed(client) == [(b"second, attempt 2", START_MS + 1500)]
    assert client.zcard(keys_of("q")[1]) == 0  # neither is reserved any more
    assert driver.release(one, "again", 0) is False  # that reservation is gone
    assert ready(client) == [b"first, attempt 2"]


def test_extend_moves_the_deadline_a_visibility_timeout_from_now(client: Any, clock: Clock) -> None:
    driver = driver_on(client, clock)
    driver.push("q", "job")
    delivery = driver.pop(["q"], 0)
    assert delivery is not None
    clock.ms += 10_000
    assert driver.extend(delivery) is True
    [(_, deadline)] = client.zrange(keys_of("q")[1], 0, -1, withscores=True)
    assert deadline == START_MS + 10_000 + VISIBILITY_SECS * 1000
    assert driver.ack(delivery) is True
    assert driver.extend(delivery) is False


def test_a_job_whose_reservation_expired_comes_back_counting_the_loss(client: Any, clock: Clock) -> None:
    driver = driver_on(client, clock)
    driver.push("q", "job")
    assert driver.pop(["q"], 0) is not None
    clock.ms += int(VISIBILITY_SECS * 1000) + 1
    again = driver.pop(["q"], 0)
    assert again is not None
    assert (again.body, again.expirations) == (b"job", 1)


def test_settling_reports_each_job_in_order_and_a_job_without_receipt_as_settled(client: Any, clock: Clock) -> None:
    driver = driver_on(client, clock)
    driver.push_many("q", ["a", "b"])
    a, b = driver.take(["q"], 0, limit=2)[1]
    assert driver.ack(b) is True
    plain = Delivery(queue="q", body=b"from elsewhere")
    assert driver.take(["q"], 0, limit=0, done=[plain, a, b]) == ([True, True, False], [])


def test_give_back_counts_the_jobs_of_every_queue(client: Any, clock: Clock) -> None:
    driver = driver_on(client, clock)
    driver.push_many("high", ["h1", "h2"])
    driver.push("low", "l1")
    taken = driver.take(["high"], 0, limit=2)[1] + driver.take(["low"], 0)[1]
    assert driver.give_back(taken) == 3
    assert (ready(client, "high"), ready(client, "low")) == ([b"h1", b"h2"], [b"l1"])


def test_without_reservations_give_back_puts_jobs_back_in_front_in_their_order(client: Any) -> None:
    driver = driver_on(client, visibility_timeout_secs=0)
    driver.push_many("q", ["a", "b", "c"])
    taken = [driver.pop(["q"], 0), driver.pop(["q"], 0)]
    assert [d.body for d in taken if d is not None] == [b"a", b"b"]
    assert driver.give_back([d for d in taken if d is not None]) == 2
    assert ready(client) == [b"a", b"b", b"c"]


def test_without_reservations_an_empty_take_is_empty_and_settling_is_always_true(client: Any) -> None:
    driver = driver_on(client, visibility_timeout_secs=0)
    plain = Delivery(queue="q", body=b"x")
    assert driver.take(["q"], 0, done=[plain]) == ([True], [])


def test_without_reservations_a_take_that_may_wait_gets_a_job_pushed_meanwhile(client: Any) -> None:
    driver = driver_on(client, visibility_timeout_secs=0)
    pusher = threading.Timer(0.2, lambda: client.lpush(queue_key("q"), "late"))
    pusher.start()
    delivery = driver.pop(["q"], 0.9)
    pusher.join()
    assert delivery is not None
    assert delivery.body == b"late"


def test_without_reservations_a_take_on_empty_queues_returns_after_its_wait(client: Any) -> None:
    driver = driver_on(client, visibility_timeout_secs=0)
    started = time.monotonic()
    assert driver.pop(["q"], 0.3) is None
    assert 0.25 <= time.monotonic() - started < 5


def test_without_reservations_due_delayed_jobs_are_taken_and_replies_may_be_text() -> None:
    text_client = fakeredis.FakeRedis(decode_responses=True)
    clock = Clock()
    driver = driver_on(text_client, clock, visibility_timeout_secs=0)
    driver.later("q", ["due"], 1)
    clock.ms += 1000
    delivery = driver.pop(["q"], 0)
    assert delivery is not None
    assert (delivery.queue, delivery.body) == ("q", b"due")
    driver.push("q", "waiting")
    blocking = driver.pop(["q"], 0.5)
    assert blocking is not None
    assert blocking.body == b"waiting"


def test_reservations_release_and_promote_report_what_they_did(client: Any, clock: Clock) -> None:
    scripts = Reservations(client, visibility_ms=1000, clock_ms=clock)
    scripts.push("q", ["a"])
    scripts.later("q", ["b", "c"], 500)
    [job] = scripts.reserve(["q"])
    assert scripts.release(job, "a2") is True  # no delay unless asked
    assert scripts.release(job, "a3", 0) is False
    assert scripts.promote(["q"]) == 0
    clock.ms += 500
    assert scripts.promote(["q"]) == 2
    assert ready(client) == [b"a2", b"b", b"c"]


def test_reserve_takes_one_job_unless_told_more_and_migrates_only_when_asked(client: Any, clock: Clock) -> None:
    scripts = Reservations(client, visibility_ms=1000, clock_ms=clock)
    scripts.push("q", ["a", "b", "c"])
    assert [j.body for j in scripts.reserve(["q"])] == [b"a"]
    assert [j.body for j in scripts.reserve(["q"], 2)] == [b"b", b"c"]
    scripts.later("q", ["due"], 100)
    clock.ms += 100
    assert scripts.ack_and_reserve([], ["q"], 1, migrate=False) == ([], [])
    scripts.push("q", ["waiting"])
    assert [j.body for j in scripts.ack_and_reserve([], ["q"])[1]] == [b"waiting"]  # one job; "due" moved in behind
    assert [j.body for j in scripts.reserve(["q"])] == [b"due"]


def test_two_workers_delaying_the_same_body_at_the_same_moment_keep_two_jobs(client: Any, clock: Clock) -> None:
    first = Reservations(client, visibility_ms=1000, clock_ms=clock)
    second = Reservations(client, visibility_ms=1000, clock_ms=clock)
    first.later("q", ["same"], 100)
    second.later("q", ["same"], 100)
    assert delayed(client) == [(b"same", START_MS + 100), (b"same", START_MS + 100)]


def test_with_an_injected_clock_every_take_brings_back_expired_jobs_first(client: Any, clock: Clock) -> None:
    driver = driver_on(client, clock)
    driver.push("q", "lost")
    assert driver.pop(["q"], 0) is not None
    driver.push("q", "waiting")
    clock.ms += int(VISIBILITY_SECS * 1000) + 1
    again = driver.pop(["q"], 0)  # at once after the last take: the clock, not the wall time, decides
    assert again is not None
    assert again.body == b"lost"


def test_a_take_between_migrations_still_finds_a_batch_that_just_came_due(client: Any) -> None:
    driver = driver_on(client)  # real time: due jobs are moved in at most every MIGRATE_EVERY_SECS
    assert driver.take(["q"], 0) == ([], [])  # this take migrates; the next ones, right after, do not
    driver.later("q", ["a", "b", "c"], 0.001)
    time.sleep(0.01)
    assert [d.body for d in driver.take(["q"], 0, limit=3)[1]] == [b"a", b"b", b"c"]
    assert driver.take(["q"], 0) == ([], [])


def test_a_waiting_take_gets_the_whole_batch_pushed_meanwhile(client: Any) -> None:
    driver = driver_on(client)
    pusher = threading.Timer(0.2, lambda: driver_on(client).push_many("q", ["a", "b", "c"]))
    pusher.start()
    taken = driver.take(["q"], 2, limit=3)[1]
    pusher.join()
    assert [d.body for d in taken] == [b"a", b"b", b"c"]


def test_settling_without_taking_never_waits(client: Any) -> None:
    driver = driver_on(client, poll_interval_secs=2)
    driver.push("q", "job")
    delivery = driver.pop(["q"], 0)
    assert delivery is not None
    client.delete(keys_of("q")[3])  # no wake-up token left over from the push: a wait would last
    started = time.monotonic()
    assert driver.take(["q"], 5, limit=0, done=[delivery]) == ([True], [])
    assert time.monotonic() - started < 1
