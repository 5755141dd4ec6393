"""EventFake: which events were dispatched, whether listeners ran, and every assertion's failure message."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from oxide import App, Mode
from oxide.testing import EventFake, fake_events, fake_queue

from .support import (
    CALLS,
    SEND_WELCOME,
    AuditLog,
    ChargeCard,
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


def failure(check: object) -> str:
    assert callable(check)
    with pytest.raises(AssertionError) as caught:
        check()
    return str(caught.value)


def test_events_are_recorded_and_no_listener_runs(app: App) -> None:
    with fake_queue(app) as q, fake_events(app) as ev:
        event = UserRegistered(user_id=1, email="a@b.c")
        app.dispatch(event)
    assert ev.dispatched == [event]
    assert CALLS.seen == []  # the inline AuditLog did not run
    q.assert_nothing_pushed()  # and nothing was queued


def test_run_listeners_records_and_dispatches_as_usual(app: App) -> None:
    with fake_queue(app) as q, fake_events(app, run_listeners=True) as ev:
        event = UserRegistered(user_id=1, email="a@b.c")
        app.dispatch(event)
    ev.assert_dispatched(UserRegistered)
    assert CALLS.of("AuditLog") == [event]
    q.assert_pushed(SendWelcomeEmail)


def test_only_the_named_events_are_faked(app: App) -> None:
    with fake_queue(app) as q, fake_events(app, [OrderPlaced]) as ev:
        signup = UserRegistered(user_id=1, email="a@b.c")
        app.dispatch(signup)
        app.dispatch(OrderPlaced(order_id=2, total_cents=10))
    assert [type(e) for e in ev.dispatched] == [OrderPlaced]
    assert CALLS.of("AuditLog") == [signup]  # UserRegistered went through
    q.assert_pushed(SendWelcomeEmail)
    q.assert_not_pushed(ChargeCard)


def test_restore_lets_dispatch_run_listeners_again(app: App) -> None:
    ev = EventFake(app)  # the plain-object form
    ev.restore()
    ev.restore()
    assert "dispatch" not in vars(app)
    event = UserRegistered(user_id=1, email="a@b.c")
    with fake_queue(app) as q:
        app.dispatch(event)
    assert CALLS.of("AuditLog") == [event]
    q.assert_pushed(SendWelcomeEmail)
    assert ev.dispatched == []


@pytest.mark.parametrize("order", ["last-first", "first-first"])
def test_stacked_event_fakes_unwind_in_any_order(app: App, order: str) -> None:
    with fake_queue(app):
        outer = EventFake(app)
        inner = EventFake(app, run_listeners=True)
        app.dispatch(UserRegistered(user_id=1, email="a@b.c"))
        assert (len(inner.dispatched), len(outer.dispatched)) == (1, 1)  # the inner one passed it on
        first, second = (inner, outer) if order == "last-first" else (outer, inner)
        first.restore()
        app.dispatch(UserRegistered(user_id=2, email="a@b.c"))
        assert [len(second.dispatched), len(first.dispatched)] == [2, 1]
        second.restore()
        assert "dispatch" not in vars(app)
        app.dispatch(UserRegistered(user_id=3, email="a@b.c"))
    # Only while the run_listeners fake alone was left (first-first) and once both were gone did AuditLog run.
    expected = [2, 3] if order == "first-first" else [3]
    assert [e.user_id for e in CALLS.of("AuditLog")] == expected  # type: ignore[attr-defined]


def test_passing_assertions(app: App) -> None:
    with fake_events(app) as ev:
        ev.assert_nothing_dispatched()
        app.dispatch(UserRegistered(user_id=1, email="a@b.c"))
        app.dispatch(UserRegistered(user_id=2, email="b@b.c"))
        ev.assert_dispatched(UserRegistered)
        ev.assert_dispatched("auth.user_registered", times=2)
        ev.assert_dispatched(UserRegistered, where=lambda e: e.email == "b@b.c", times=1)
        ev.assert_dispatched(times=2)
        ev.assert_not_dispatched(OrderPlaced)
        ev.assert_not_dispatched(UserRegistered, where=lambda e: e.user_id == 3)
        ev.assert_listening(UserRegistered, SendWelcomeEmail)
        ev.assert_listening(UserRegistered, SendWelcomeEmail, mode=Mode.queue("redis").on_queue("emails"))
        ev.assert_listening("auth.user_registered", AuditLog, mode=Mode.sync())
        assert [e.user_id for e in ev.events(UserRegistered)] == [1, 2]  # type: ignore[attr-defined]


def test_assert_dispatched_shows_what_was_dispatched(app: App) -> None:
    with fake_events(app) as ev:
        assert failure(lambda: ev.assert_dispatched(OrderPlaced)) == (
            "expected an event 'shop.order_placed' to be dispatched at least once, but it was dispatched 0 times.\n"
            "No event was dispatched."
        )
        app.dispatch(UserRegistered(user_id=1, email="a@b.c"))
        app.dispatch(OrderPlaced(order_id=5, total_cents=100))
        message = failure(lambda: ev.assert_dispatched(OrderPlaced, times=2))
    assert message.startswith(
        "expected an event 'shop.order_placed' to be dispatched exactly 2 times, but it was dispatched 1 time.\n"
        "2 events were dispatched (> marks the event asked for):\n"
    )
    assert row("auth.user_registered", "UserRegistered", '{"email":"a@b.c","user_id":1}').search(message)
    assert row("shop.order_placed", "OrderPlaced", '{"order_id":5,"total_cents":100}', marked=True).search(message)


def test_assert_not_dispatched_marks_the_offending_events(app: App) -> None:
    with fake_events(app) as ev:
        app.dispatch(UserRegistered(user_id=1, email="a@b.c"))
        app.dispatch(UserRegistered(user_id=2, email="b@b.c"))
        message = failure(lambda: ev.assert_not_dispatched(UserRegistered, where=lambda e: e.user_id == 2))
    assert message.startswith(
        "expected no event 'auth.user_registered' matching a lambda to be dispatched, but 1 was (marked >):\n"
    )
    assert row("auth.user_registered", "UserRegistered", '{"email":"b@b.c","user_id":2}', marked=True).search(message)
    assert row("auth.user_registered", "UserRegistered", '{"email":"a@b.c","user_id":1}').search(message)


def test_assert_nothing_dispatched_lists_everything(app: App) -> None:
    with fake_events(app) as ev:
        app.dispatch(OrderPlaced(order_id=5, total_cents=100))
        message = failure(ev.assert_nothing_dispatched)
    assert message.startswith("expected no event to be dispatched, but 1 event was:\n")
    assert row("shop.order_placed", "OrderPlaced", '{"order_id":5,"total_cents":100}').search(message)


def test_assert_listening_shows_the_registrations(app: App) -> None:
    with fake_events(app) as ev:
        wrong_mode = failure(lambda: ev.assert_listening(UserRegistered, SendWelcomeEmail, mode=Mode.queue("redis")))
        assert wrong_mode == (
            f"{SEND_WELCOME} listens to 'auth.user_registered' with queue redis on emails, expected queue redis"
        )
        missing = failure(lambda: ev.assert_listening(OrderPlaced, SendWelcomeEmail))
    assert missing.startswith(f"expected {SEND_WELCOME} to listen to 'shop.order_placed', but it does not.")
    assert row("auth.user_registered", SEND_WELCOME, "queue redis on emails").search(missing)
    assert row("shop.order_placed", "tests.kit.support.NotifyWarehouse", "queue sync").search(missing)
    assert row("auth.user_registered", "tests.kit.support.AuditLog", "sync").search(missing)
