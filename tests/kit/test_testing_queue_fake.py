"""QueueFake: what it records, what it leaves alone, and every assertion's pass and failure paths."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

import oxide.queue
from oxide import App, ConnectionUnavailable, Job
from oxide.drivers.redis import RedisDriver
from oxide.testing import QueueFake, RedisFake, fake_queue
from oxide.testing.drivers import installed

from .support import (
    CALLS,
    CHARGE_CARD,
    SEND_WELCOME,
    AuditLog,
    ChargeCard,
    NotifyWarehouse,
    OrderPlaced,
    SendWelcomeEmail,
    UserRegistered,
    make_app,
    row,
)


@pytest.fixture
def app() -> Iterator[App]:
    app = make_app()
    yield app
    app.close()


@pytest.fixture
def q(app: App) -> Iterator[QueueFake]:
    with fake_queue(app) as fake:
        yield fake


def signup(app: App, user_id: int = 7, email: str = "a@b.c") -> UserRegistered:
    event = UserRegistered(user_id=user_id, email=email)
    app.dispatch(event)
    return event


# -- recording --------------------------------------------------------------------------------------


def test_every_pushed_job_is_recorded_with_its_decoded_event_instead_of_sent(app: App, q: QueueFake) -> None:
    event = signup(app)  # the redis connection points at a closed port: sending would raise
    [pushed] = q.jobs
    assert (pushed.connection, pushed.queue) == ("redis", "emails")
    assert (pushed.event_name, pushed.listener_type) == ("auth.user_registered", SEND_WELCOME)
    assert pushed.event == event
    assert pushed.listener is SendWelcomeEmail
    assert pushed.payload == {"user_id": 7, "email": "a@b.c"}
    assert Job.from_json(pushed.body).uuid  # the body is the wire form, uuid and all
    assert pushed.delay_secs is None
    assert CALLS.of("SendWelcomeEmail") == []  # recorded, not run


def test_inline_listeners_still_run_at_dispatch(app: App, q: QueueFake) -> None:
    event = signup(app)
    assert CALLS.of("AuditLog") == [event]
    q.assert_not_pushed(AuditLog)


def test_a_sync_connection_is_faked_too_so_its_listeners_wait_for_a_drain(app: App, q: QueueFake) -> None:
    app.dispatch(OrderPlaced(order_id=1, total_cents=500))
    q.assert_pushed_on("default", NotifyWarehouse, connection="sync")
    assert CALLS.of("NotifyWarehouse") == []


def test_only_the_named_connections_are_faked(app: App) -> None:
    with fake_queue(app, connections=["redis"]) as q:
        event = OrderPlaced(order_id=1, total_cents=500)
        app.dispatch(event)
    assert CALLS.of("NotifyWarehouse") == [event]  # the sync connection ran it inline, as configured
    assert [job.listener_type for job in q.jobs] == [CHARGE_CARD]


def test_an_unknown_connection_name_is_refused_with_the_defined_ones(app: App) -> None:
    with pytest.raises(Exception, match=r"unknown queue connection 'nope'; defined in queue.toml: redis, sync"):
        QueueFake(app, connections=["nope"])


def test_jobs_of_custom_producers_and_delayed_jobs_are_recorded(app: App, q: QueueFake) -> None:
    oxide.queue.push("redis", "imports", Job("ext.thing", "ext.Importer", {"n": 1}))
    app.driver("redis").later(
        "emails", [Job("auth.user_registered", SEND_WELCOME, {"user_id": 1, "email": "x"}).to_json()], 30
    )
    unknown, delayed = q.jobs
    assert (unknown.queue, unknown.event, unknown.listener) == ("imports", None, None)
    assert unknown.decode_error is not None
    assert "no listener 'ext.Importer'" in unknown.decode_error
    assert delayed.delay_secs == 30
    assert delayed.event == UserRegistered(user_id=1, email="x")
    with pytest.raises(AssertionError) as caught:
        q.assert_nothing_pushed()
    assert row("redis", "imports", "ext.thing", "ext.Importer", '{"n":1}').search(str(caught.value))
    assert row("redis", "emails (+30s)", "auth.user_registered", SEND_WELCOME).search(str(caught.value))


def test_restore_gives_the_real_driver_back(app: App) -> None:
    q = QueueFake(app)  # the plain-object form
    signup(app)
    q.restore()
    q.restore()  # twice is harmless
    assert isinstance(app.driver("redis"), RedisDriver)
    assert installed(app) == {}
    with pytest.raises(ConnectionUnavailable):
        signup(app)  # really sent now: to the closed port
    assert len(q.jobs) == 1  # what was recorded stays readable


def test_the_context_manager_restores_even_when_the_block_raises(app: App) -> None:
    with pytest.raises(RuntimeError), fake_queue(app):
        raise RuntimeError("test body failed")
    assert isinstance(app.driver("redis"), RedisDriver)


def test_the_fake_survives_app_close(app: App, q: QueueFake) -> None:
    app.close()  # code under test may close the app; the next job must still not reach a server
    signup(app)
    q.assert_pushed(SendWelcomeEmail)


@pytest.mark.parametrize("order", ["last-first", "first-first"])
def test_stacked_fakes_unwind_in_any_order(app: App, order: str) -> None:
    outer = RedisFake(app, connections=["redis"])
    inner = QueueFake(app, connections=["redis"])
    signup(app)
    assert len(inner.jobs) == 1
    assert outer.size("emails") == 0
    if order == "last-first":
        inner.restore()
        signup(app)
        assert outer.size("emails") == 1  # the outer fake is back in place
        outer.restore()
    else:
        outer.restore()
        signup(app)
        assert len(inner.jobs) == 2  # the inner fake stays in place
        inner.restore()
    assert isinstance(app.driver("redis"), RedisDriver)
    assert not isinstance(app.driver("redis"), type(outer.drivers["redis"]))


# -- assertions that hold ------------------------------------------------------------------------------


def test_passing_assertions(app: App, q: QueueFake) -> None:
    q.assert_nothing_pushed()
    signup(app, 1)
    signup(app, 2)
    app.dispatch(OrderPlaced(order_id=9, total_cents=500))
    q.assert_pushed(SendWelcomeEmail)
    q.assert_pushed(SendWelcomeEmail, times=2)
    q.assert_pushed(SEND_WELCOME, times=2)  # the listener_type string works too
    q.assert_pushed(SendWelcomeEmail(), times=2)  # and an instance
    q.assert_pushed(UserRegistered, times=2)  # an Event class as the first argument filters by event
    q.assert_pushed(event="auth.user_registered", where=lambda e: e.user_id == 2, times=1)
    q.assert_pushed_on("emails", SendWelcomeEmail, connection="redis", times=2)
    q.assert_pushed_on("high", ChargeCard, where=lambda e: e.total_cents == 500)
    q.assert_pushed(times=4)  # everything, the sync connection's job included
    q.assert_not_pushed(AuditLog)
    q.assert_not_pushed(SendWelcomeEmail, where=lambda e: e.user_id == 3)
    q.assert_not_pushed(ChargeCard, queue="emails")
    q.assert_pushed(ChargeCard, times=1)
    assert [p.event.user_id for p in q.pushed(SendWelcomeEmail)] == [1, 2]  # type: ignore[union-attr]


def test_clear_forgets_what_was_recorded(app: App, q: QueueFake) -> None:
    signup(app)
    q.clear()
    q.assert_nothing_pushed()
    assert q.drivers["redis"].size("emails") == 1  # the job itself still waits for a drain


# -- assertions that fail, and what they say ----------------------------------------------------------


def failure(check: object) -> str:
    assert callable(check)
    with pytest.raises(AssertionError) as caught:
        check()
    return str(caught.value)


def test_assert_pushed_with_nothing_pushed_says_so(q: QueueFake) -> None:
    message = failure(lambda: q.assert_pushed(SendWelcomeEmail))
    assert message == (
        f"expected a job of listener {SEND_WELCOME!r} to be pushed at least once, but it was pushed 0 times.\n"
        "Nothing was pushed."
    )


def test_assert_pushed_lists_what_was_pushed_instead(app: App, q: QueueFake) -> None:
    app.dispatch(OrderPlaced(order_id=9, total_cents=500))
    message = failure(lambda: q.assert_pushed(SendWelcomeEmail))
    assert message.startswith(f"expected a job of listener {SEND_WELCOME!r} to be pushed at least once")
    assert "2 jobs were pushed:\n" in message
    lines = message.splitlines()
    assert re.fullmatch(r"\s+#\s+connection\s+queue\s+event\s+listener\s+payload", lines[2])
    assert row("redis", "high", "shop.order_placed", CHARGE_CARD, '{"order_id":9,"total_cents":500}').search(message)
    assert row("sync", "default", "shop.order_placed").search(message)


def test_assert_pushed_times_marks_the_jobs_of_the_listener(app: App, q: QueueFake) -> None:
    signup(app, 1)
    app.dispatch(OrderPlaced(order_id=9, total_cents=500))
    message = failure(lambda: q.assert_pushed(SendWelcomeEmail, times=2))
    assert "to be pushed exactly 2 times, but it was pushed 1 time." in message
    assert "(> marks the listener/event asked for)" in message
    assert row("redis", "emails", "auth.user_registered", SEND_WELCOME, marked=True).search(message)
    assert row("redis", "high", "shop.order_placed", CHARGE_CARD, marked=False).search(message)


def test_assert_pushed_on_the_wrong_queue_shows_where_the_job_went(app: App, q: QueueFake) -> None:
    signup(app)
    message = failure(lambda: q.assert_pushed_on("low", SendWelcomeEmail, connection="redis"))
    assert message.startswith(
        f"expected a job of listener {SEND_WELCOME!r} on queue 'low' of connection 'redis' to be pushed at least once"
    )
    assert row("redis", "emails", "auth.user_registered", SEND_WELCOME, marked=True).search(message)


def test_assert_pushed_with_a_predicate_names_it_and_shows_the_payloads(app: App, q: QueueFake) -> None:
    signup(app, 1, "one@b.c")

    def is_for_vip(event: UserRegistered) -> bool:
        return event.email.endswith("@vip.example")

    message = failure(lambda: q.assert_pushed(event=UserRegistered, where=is_for_vip))
    assert "expected a job for event 'auth.user_registered' matching " in message
    assert "is_for_vip to be pushed at least once, but it was pushed 0 times." in message
    assert row(
        "redis", "emails", "auth.user_registered", SEND_WELCOME, '{"email":"one@b.c","user_id":1}', marked=True
    ).search(message)
    lambda_message = failure(lambda: q.assert_pushed(SendWelcomeEmail, where=lambda e: False))
    assert "matching a lambda to be pushed" in lambda_message


def test_assert_not_pushed_marks_the_offending_jobs(app: App, q: QueueFake) -> None:
    signup(app, 1)
    signup(app, 2)
    app.dispatch(OrderPlaced(order_id=9, total_cents=500))
    message = failure(lambda: q.assert_not_pushed(SendWelcomeEmail, where=lambda e: e.user_id == 2))
    assert message.startswith(
        f"expected no job of listener {SEND_WELCOME!r} matching a lambda to be pushed, but 1 was pushed"
    )
    assert row(
        "redis", "emails", "auth.user_registered", SEND_WELCOME, '{"email":"a@b.c","user_id":2}', marked=True
    ).search(message)
    assert row("redis", "emails", "auth.user_registered", SEND_WELCOME, '{"email":"a@b.c","user_id":1}').search(message)
    two = failure(lambda: q.assert_not_pushed(UserRegistered))
    assert "to be pushed, but 2 were pushed (marked >):" in two


def test_assert_nothing_pushed_lists_everything(app: App, q: QueueFake) -> None:
    signup(app)
    message = failure(q.assert_nothing_pushed)
    assert message.startswith("expected nothing to be pushed, but 1 job was pushed:\n")
    assert row("redis", "emails", "auth.user_registered", SEND_WELCOME, '{"email":"a@b.c","user_id":7}').search(message)


def test_long_payloads_and_long_lists_are_cut(app: App, q: QueueFake) -> None:
    for n in range(60):
        signup(app, n, "x" * 200)
    message = failure(q.assert_nothing_pushed)
    assert "60 jobs were pushed" in message
    assert "x" * 80 not in message
    assert re.search(r'\{"email":"x+\.\.\.$', message, re.M)  # the payload cell is cut at the end of its line
    assert message.rstrip().endswith("... and 10 more")


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda q: q.assert_pushed(times=-1), ValueError, r"times= expects a whole number >= 0, got -1"),
        (lambda q: q.assert_pushed(event=AuditLog), TypeError, r"event= expects an Event subclass"),
        (lambda q: q.assert_pushed(UserRegistered, event=OrderPlaced), TypeError, r"both as the first argument"),
        (lambda q: q.assert_pushed(SendWelcomeEmail, where="user_id == 1"), TypeError, r"where= expects a callable"),
    ],
)
def test_misused_assertions_say_how_to_call_them(
    q: QueueFake, call: object, error: type[Exception], match: str
) -> None:
    assert callable(call)
    with pytest.raises(error, match=match):
        call(q)
