"""The Driver contract, one suite for every backend (fixture ``driver_under_test`` in conftest.py).

Each test states one thing a worker relies on. Time moves only when a test
moves the fake clock; an empty take waits no longer than the backend's
shortest wait. ``w1``/``w2`` are two workers: two drivers, two connections.
"""

from __future__ import annotations

import pytest

from oxide.drivers import Delivery, Driver
from tests.contract.conftest import DriverUnderTest

EMPTY = 0.01  # the wait of a take expected to find nothing


def take(driver: Driver, queues: list[str]) -> Delivery:
    delivery = driver.pop(queues, EMPTY)
    assert delivery is not None, f"expected a job from {queues}"
    return delivery


def bodies_of(dut: DriverUnderTest, queues: list[str]) -> list[bytes]:
    """Take and acknowledge everything in ``queues``, in the order the driver hands it out."""
    out = []
    while (delivery := dut.driver.pop(queues, EMPTY)) is not None:
        assert dut.driver.ack(delivery)
        out.append(delivery.body)
    return out


def test_strict_priority_takes_the_first_non_empty_queue_in_the_order_given(dut: DriverUnderTest) -> None:
    high, default, low = dut.queues("high", "default", "low")
    dut.driver.push(low, "l1")
    dut.driver.push(default, "d1")
    dut.driver.push(high, "h1")
    dut.driver.push(low, "l2")
    dut.driver.push(high, "h2")
    assert bodies_of(dut, [high, default, low]) == [b"h1", b"h2", b"d1", b"l1", b"l2"]
    dut.driver.push_many(high, ["h3"])
    dut.driver.push_many(low, ["l3"])
    assert bodies_of(dut, [low, high]) == [b"l3", b"h3"]


def test_each_queue_is_first_in_first_out(dut: DriverUnderTest) -> None:
    [queue] = dut.queues("fifo")
    dut.driver.push(queue, "1")
    dut.driver.push_many(queue, [str(n) for n in range(2, 150)])
    dut.driver.push(queue, "150")
    assert bodies_of(dut, [queue]) == [str(n).encode() for n in range(1, 151)]


def test_a_taken_job_is_held_until_acknowledged_and_then_gone(dut: DriverUnderTest) -> None:
    [queue] = dut.queues("q")
    w1, w2 = dut.driver, dut.another()
    w1.push(queue, "job")
    delivery = take(w1, [queue])
    assert (delivery.queue, delivery.body, delivery.expirations) == (queue, b"job", 0)
    assert w2.pop([queue], EMPTY) is None
    assert w1.size(queue) == 0
    assert w1.ack(delivery) is True
    dut.clock.advance(dut.visibility_secs * 3)
    assert w2.pop([queue], EMPTY) is None


def test_an_expired_reservation_returns_to_the_front_with_its_expiration_counted(dut: DriverUnderTest) -> None:
    [queue] = dut.queues("q")
    w1, w2 = dut.driver, dut.another()
    w1.push_many(queue, ["a", "b"])
    lost = take(w1, [queue])
    dut.clock.advance(dut.visibility_secs)  # the deadline itself counts as passed
    again = take(w2, [queue])
    assert (again.body, again.expirations) == (b"a", 1)
    dut.clock.advance(dut.visibility_secs + 1)
    third = take(w2, [queue])
    assert (third.body, third.expirations) == (b"a", 2)
    assert w2.ack(third) is True
    assert (take(w2, [queue]).body, lost.body) == (b"b", b"a")


def test_a_reservation_is_kept_until_its_deadline(dut: DriverUnderTest) -> None:
    [queue] = dut.queues("q")
    w1, w2 = dut.driver, dut.another()
    w1.push(queue, "a")
    delivery = take(w1, [queue])
    dut.clock.advance(dut.visibility_secs - 0.001)
    assert w2.pop([queue], EMPTY) is None
    assert w1.ack(delivery) is True


def test_expired_reservations_return_oldest_first_ahead_of_waiting_jobs(dut: DriverUnderTest) -> None:
    [queue] = dut.queues("q")
    w1, w2 = dut.driver, dut.another()
    w1.push_many(queue, ["a", "b", "c", "d"])
    first = take(w1, [queue])
    dut.clock.advance(1)
    second = take(w1, [queue])
    dut.clock.advance(dut.visibility_secs)
    out = [take(w2, [queue]) for _ in range(3)]
    assert [(d.body, d.expirations) for d in out] == [(first.body, 1), (second.body, 1), (b"c", 0)]


def test_a_live_reservation_extended_is_never_handed_out_again(dut: DriverUnderTest) -> None:
    [queue] = dut.queues("q")
    w1, w2 = dut.driver, dut.another()
    w1.push_many(queue, ["long", "next"])
    delivery = take(w1, [queue])
    for _ in range(5):  # a job running for three visibility timeouts, extended as it goes
        dut.clock.advance(dut.visibility_secs * 0.6)
        assert w1.extend(delivery) is True
    taken = take(w2, [queue])
    assert taken.body == b"next"
    assert w2.pop([queue], EMPTY) is None
    assert w1.ack(delivery) is True
    assert w2.ack(taken) is True


def test_release_now_queues_the_new_body_at_the_back_of_the_line(dut: DriverUnderTest) -> None:
    [queue] = dut.queues("q")
    dut.driver.push_many(queue, ["a", "b"])
    delivery = take(dut.driver, [queue])
    assert dut.driver.release(delivery, "a, attempt 2", 0) is True
    assert dut.driver.ack(delivery) is False  # released: no longer held
    dut.driver.push(queue, "c")
    out = [take(dut.driver, [queue]) for _ in range(3)]
    assert [(d.body, d.expirations) for d in out] == [(b"b", 0), (b"a, attempt 2", 0), (b"c", 0)]


def test_release_with_a_delay_queues_it_only_when_the_delay_has_passed(dut: DriverUnderTest) -> None:
    [queue] = dut.queues("q")
    dut.driver.push(queue, "a")
    delivery = take(dut.driver, [queue])
    assert dut.driver.release(delivery, "a2", 5) is True
    assert dut.driver.size(queue) == 0
    dut.clock.advance(4.999)
    assert dut.driver.pop([queue], EMPTY) is None
    dut.clock.advance(0.001)
    retried = take(dut.driver, [queue])
    assert (retried.body, retried.expirations) == (b"a2", 0)


def test_later_jobs_wait_for_their_delay_then_join_the_back_of_the_line(dut: DriverUnderTest) -> None:
    [queue] = dut.queues("q")
    dut.driver.later(queue, ["x", "y"], 3)
    dut.driver.push(queue, "now")
    assert bodies_of(dut, [queue]) == [b"now"]
    dut.clock.advance(3)
    dut.driver.push(queue, "pushed after they became due, before any take")
    assert bodies_of(dut, [queue]) == [b"pushed after they became due, before any take", b"x", b"y"]


def test_later_with_no_delay_is_a_push(dut: DriverUnderTest) -> None:
    [queue] = dut.queues("q")
    dut.driver.later(queue, ["a"], 0)
    dut.driver.later(queue, ["b"], -1)
    assert dut.driver.size(queue) == 2
    assert bodies_of(dut, [queue]) == [b"a", b"b"]


def test_identical_bodies_are_two_jobs(dut: DriverUnderTest) -> None:
    [queue] = dut.queues("q")
    dut.driver.push(queue, '{"same":1}')
    dut.driver.push_many(queue, ['{"same":1}'])
    dut.driver.later(queue, ['{"same":1}', '{"same":1}'], 1)
    dut.clock.advance(1)
    first, second, third, fourth = (take(dut.driver, [queue]) for _ in range(4))
    assert {d.body for d in (first, second, third, fourth)} == {b'{"same":1}'}
    assert dut.driver.ack(second) is True
    assert dut.driver.ack(second) is False
    assert dut.driver.release(first, '{"same":1}', 0) is True
    assert dut.driver.ack(third) is True
    assert dut.driver.ack(fourth) is True
    assert bodies_of(dut, [queue]) == [b'{"same":1}']


def test_ack_release_and_extend_after_expiry_return_false_and_queue_nothing(dut: DriverUnderTest) -> None:
    [queue] = dut.queues("q")
    w1, w2 = dut.driver, dut.another()
    w1.push(queue, "a")
    stale = take(w1, [queue])
    dut.clock.advance(dut.visibility_secs + 1)
    current = take(w2, [queue])
    assert (current.body, current.expirations) == (b"a", 1)
    assert w1.ack(stale) is False
    assert w1.release(stale, "a again", 0) is False
    assert w1.release(stale, "a later", 1) is False
    assert w1.extend(stale) is False
    dut.clock.advance(2)
    assert w1.size(queue) == 0
    assert w1.pop([queue], EMPTY) is None
    assert w2.ack(current) is True  # the stale calls did not touch the current reservation
    dut.clock.advance(dut.visibility_secs * 2)
    assert w1.pop([queue], EMPTY) is None


def test_an_ack_after_the_deadline_succeeds_while_no_take_has_returned_the_job(dut: DriverUnderTest) -> None:
    queue, other = dut.queues("q", "other")
    w1, w2 = dut.driver, dut.another()
    w1.push(queue, "slow")
    w1.push(other, "elsewhere")
    delivery = take(w1, [queue])
    dut.clock.advance(dut.visibility_secs * 2)
    assert take(w2, [other]).body == b"elsewhere"  # a take that does not name the queue leaves it alone
    assert w1.ack(delivery) is True  # nobody else has the job: the late ack still removes it
    assert w2.pop([queue], EMPTY) is None


@pytest.mark.parametrize(
    "body",
    [
        '{"payload":"é ü ß ø 中文 日本語 한국어 עברית العربية"}',
        '{"payload":"𝄞 😀 👩\u200d👩\u200d👧 🏳\ufe0f\u200d🌈 e\u0301 \ufeff \u2028 \u2029 \\u0000"}',
        """{"payload":"it's \\"quoted\\" ? %s %% %(x)s :1 $1 '); DROP TABLE jobs; --"}""",
        '{"payload":"' + "x" * 70_000 + '"}',  # past MySQL's TEXT (64 KiB)
        '{"payload":"' + "🦀" * 600_000 + '"}',  # 2.4 MB of four-byte characters
    ],
    ids=["scripts", "astral-zwj-combining-separators", "sql-and-placeholder-characters", "past-64KiB", "2.4MB-astral"],
)
def test_bodies_come_back_byte_for_byte(dut: DriverUnderTest, body: str) -> None:
    [queue] = dut.queues("q")
    dut.driver.push(queue, body)
    dut.driver.later(queue, [body], 1)
    first = take(dut.driver, [queue])
    assert first.body == body.encode("utf-8")
    assert dut.driver.release(first, body, 0)
    dut.clock.advance(1)
    assert bodies_of(dut, [queue]) == [body.encode("utf-8")] * 2


def test_size_counts_the_jobs_waiting_in_one_queue(dut: DriverUnderTest) -> None:
    queue, other = dut.queues("q", "other")
    assert dut.driver.size(queue) == 0
    dut.driver.push_many(queue, ["a", "b", "c"])
    dut.driver.push(other, "x")
    dut.driver.later(queue, ["later"], 5)
    assert (dut.driver.size(queue), dut.driver.size(other)) == (3, 1)
    held = take(dut.driver, [queue])
    assert dut.driver.size(queue) == 2
    assert dut.driver.release(held, "a2", 0)
    assert dut.driver.size(queue) == 3
    dut.clock.advance(5)
    take(dut.driver, [queue])  # the take that finds the delayed job due moves it into the line
    assert dut.driver.size(queue) == 3


def test_an_empty_take_returns_none(dut: DriverUnderTest) -> None:
    queues = dut.queues("a", "b")
    assert dut.driver.pop(queues, EMPTY) is None
    dut.driver.later(queues[1], ["not yet"], 1)
    assert dut.driver.pop(queues, EMPTY) is None


@pytest.fixture
def dut(driver_under_test: DriverUnderTest) -> DriverUnderTest:
    return driver_under_test
