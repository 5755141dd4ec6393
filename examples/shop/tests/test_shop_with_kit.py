"""The shop's listeners, tested with nothing but oxide-queue's testing kit: no Redis, no database server."""

from __future__ import annotations

from shop import place_orders
from shop.events import CustomerRegistered, OrderPlaced
from shop.listeners import AuditLog, ChargeCard, SendReceipt, SendWelcomeEmail, SyncLegacyCrm, UpdateSalesReport

from oxide import App, Mode
from oxide.failed.store import DatabaseFailedJobProvider
from oxide.testing import EventFake, QueueFake, RedisFake
from oxide.testing.pytest_plugin import Work


def order(order_id: int = 1001, total_cents: int = 1999) -> OrderPlaced:
    return OrderPlaced(order_id=order_id, email="ada@example.com", total_cents=total_cents)


def test_an_order_queues_money_first_and_the_rest_by_urgency(oxide_app: App, oxide_queue_fake: QueueFake) -> None:
    oxide_app.dispatch(order())
    oxide_queue_fake.assert_pushed_on("high", ChargeCard, connection="redis", where=lambda e: e.total_cents == 1999)
    oxide_queue_fake.assert_pushed_on("default", SendReceipt, where=lambda e: e.email == "ada@example.com")
    oxide_queue_fake.assert_pushed_on("low", UpdateSalesReport)
    oxide_queue_fake.assert_pushed_on("low", SyncLegacyCrm)
    oxide_queue_fake.assert_pushed(OrderPlaced, times=4)
    oxide_queue_fake.assert_not_pushed(AuditLog)  # inline: it ran inside dispatch
    oxide_queue_fake.assert_not_pushed(SendWelcomeEmail)


def test_a_registration_queues_only_the_welcome_email(oxide_app: App, oxide_queue_fake: QueueFake) -> None:
    oxide_app.dispatch(CustomerRegistered(customer_id=7, email="grace@example.com"))
    oxide_queue_fake.assert_pushed_on("default", SendWelcomeEmail, times=1)
    oxide_queue_fake.assert_pushed(times=1)


def test_the_listeners_are_wired_as_the_readme_says(oxide_event_fake: EventFake) -> None:
    oxide_event_fake.assert_listening(OrderPlaced, AuditLog, mode=Mode.sync())
    oxide_event_fake.assert_listening(OrderPlaced, ChargeCard, mode=Mode.queue().on_queue("high"))
    oxide_event_fake.assert_listening(OrderPlaced, SendReceipt, mode=Mode.queue())
    oxide_event_fake.assert_listening(CustomerRegistered, SendWelcomeEmail, mode=Mode.queue())


def test_the_place_orders_script_dispatches_a_registration_and_an_order_each(oxide_event_fake: EventFake) -> None:
    assert place_orders.main(["3"]) == 0
    oxide_event_fake.assert_dispatched(CustomerRegistered, times=3)
    oxide_event_fake.assert_dispatched(OrderPlaced, times=3)
    oxide_event_fake.assert_dispatched(OrderPlaced, where=lambda e: e.total_cents == 3 * 1999, times=1)


def test_every_job_runs_and_the_legacy_crm_lands_in_failed_jobs(
    oxide_app: App, oxide_queue_fake: QueueFake, oxide_work: Work, oxide_failed_store: DatabaseFailedJobProvider
) -> None:
    oxide_app.dispatch(order(1001))
    oxide_app.dispatch(CustomerRegistered(customer_id=7, email="grace@example.com"))
    result = oxide_work(failed=oxide_failed_store)
    assert sorted(j.listener_type.rsplit(".", 1)[1] for j in result.done) == [
        "ChargeCard",
        "SendReceipt",
        "SendWelcomeEmail",
        "UpdateSalesReport",
    ]
    [crm] = result.failed
    assert crm.error == "ConnectionRefusedError: legacy CRM refused order 1001"
    [row] = oxide_failed_store.all()
    assert (row.listener_type, row.queue, row.payload) == (
        "shop.listeners.SyncLegacyCrm",
        "low",
        '{"email":"ada@example.com","order_id":1001,"total_cents":1999}',
    )


def test_a_worker_on_high_default_low_takes_the_card_charge_first(
    oxide_app: App, oxide_fakeredis: RedisFake, oxide_work: Work
) -> None:
    oxide_app.dispatch(order(1001))
    oxide_app.dispatch(order(1002))
    assert [oxide_fakeredis.size(q) for q in ("high", "default", "low")] == [2, 2, 4]
    result = oxide_work(queues=["high", "default", "low"])
    assert [j.queue for j in result.jobs] == ["high"] * 2 + ["default"] * 2 + ["low"] * 4
    assert [j.listener_type.rsplit(".", 1)[1] for j in result.failed] == ["SyncLegacyCrm"] * 2
