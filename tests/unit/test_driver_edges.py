"""The drivers' receipt-less and no-op paths: the sync driver's contract, and Redis without reservations."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from oxide.config import ConnectionConfig
from oxide.drivers import Delivery, delay_ms
from oxide.drivers.sync import SyncDriver
from tests.conftest import redis_driver_for


def sync_driver(ran: list[tuple[str, str]]) -> SyncDriver:
    return SyncDriver(ConnectionConfig(name="sync", driver="sync"), lambda queue, body: ran.append((queue, body)))


def test_sync_later_runs_at_once_because_nothing_can_wait() -> None:
    ran: list[tuple[str, str]] = []
    sync_driver(ran).later("q", ["one", "two"], 3600.0)
    assert ran == [("q", "one"), ("q", "two")]


def test_sync_release_runs_the_new_body_and_the_rest_of_the_contract_is_trivially_true() -> None:
    ran: list[tuple[str, str]] = []
    driver = sync_driver(ran)
    delivery = Delivery("q", b"old")
    assert driver.release(delivery, "new", 10.0) is True
    assert ran == [("q", "new")]
    assert driver.ack(delivery) is True
    assert driver.extend(delivery) is True


def test_redis_client_property_is_the_client_given(fake_redis: Any) -> None:
    assert redis_driver_for(fake_redis).client is fake_redis


def test_pushing_no_bodies_writes_nothing(fake_redis: Any) -> None:
    redis_driver_for(fake_redis).push_many("q", [])
    assert fake_redis.keys("*") == []


def test_later_without_a_delay_is_a_plain_push(fake_redis: Any) -> None:
    driver = redis_driver_for(fake_redis)
    driver.later("q", ["now"], 0.0)
    assert driver.size("q") == 1
    assert fake_redis.exists("oxide:queue:q:delayed") == 0


def test_later_with_a_delay_waits_in_the_delayed_set(fake_redis: Any) -> None:
    driver = redis_driver_for(fake_redis)
    driver.later("q", ["soon"], 60.0)
    assert driver.size("q") == 0
    assert fake_redis.zcard("oxide:queue:q:delayed") == 1


def test_without_reservations_a_taken_job_has_no_receipt_and_needs_no_ack_or_extend(fake_redis: Any) -> None:
    driver = redis_driver_for(fake_redis, visibility_timeout_secs=0)
    driver.push("q", "job")
    delivery = driver.pop(["q"], 0.01)
    assert delivery == Delivery("q", b"job")
    assert delivery is not None
    assert delivery.receipt is None
    assert driver.extend(delivery) is True
    assert driver.ack(delivery) is True
    assert fake_redis.keys("*") == []  # BRPOP took it whole: nothing was reserved, nothing to clean


def test_without_reservations_release_pushes_the_new_body_back(fake_redis: Any) -> None:
    driver = redis_driver_for(fake_redis, visibility_timeout_secs=0)
    assert driver.release(Delivery("q", b"old"), "retry", 0.0) is True
    assert fake_redis.lrange("oxide:queue:q", 0, -1) == [b"retry"]
    assert driver.release(Delivery("q", b"old"), "later", 30.0) is True
    assert fake_redis.zcard("oxide:queue:q:delayed") == 1


@given(st.floats(min_value=0, max_value=10**9, allow_nan=False))
def test_a_delay_in_milliseconds_is_never_shorter_than_the_delay_asked_for(delay_secs: float) -> None:
    due_in = delay_ms(delay_secs)
    assert due_in >= delay_secs * 1000
    assert due_in - delay_secs * 1000 <= 1


def test_a_fraction_of_a_millisecond_is_rounded_up_not_to_the_nearest() -> None:
    # A backoff of 16.000193 s rounded to the nearest ms came back 0.193 ms early (CI saw it).
    assert delay_ms(16.000193) == 16001
    assert delay_ms(0.0001) == 1
    assert delay_ms(2.0) == 2000
    assert delay_ms(0) == 0
    assert delay_ms(-3.0) == 0
