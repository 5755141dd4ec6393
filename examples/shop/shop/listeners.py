"""What the shop does about its events. Each listener has ``handle(event)``; raising means the job failed."""

from __future__ import annotations

import asyncio
import logging

from .events import CustomerRegistered, OrderPlaced

log = logging.getLogger("shop")


class ChargeCard:
    """Money first: queued on the ``high`` queue so a busy worker takes it before anything else."""

    def handle(self, event: OrderPlaced) -> None:
        log.info("charged order %d: %d cents", event.order_id, event.total_cents)


class SendReceipt:
    """An ``async def handle`` runs on the worker's one event loop."""

    async def handle(self, event: OrderPlaced) -> None:
        await asyncio.sleep(0)  # stands in for an async mail client
        log.info("receipt for order %d sent to %s", event.order_id, event.email)


class UpdateSalesReport:
    """Nobody waits for the report: the ``low`` queue."""

    def handle(self, event: OrderPlaced) -> None:
        log.info("sales report updated with order %d", event.order_id)


class SyncLegacyCrm:
    """The legacy CRM is down for good: every job of this listener fails and lands in failed_jobs."""

    def handle(self, event: OrderPlaced) -> None:
        raise ConnectionRefusedError(f"legacy CRM refused order {event.order_id}")


class SendWelcomeEmail:
    def handle(self, event: CustomerRegistered) -> None:
        log.info("welcome email sent to %s", event.email)


class AuditLog:
    """No mode: runs inline, inside ``dispatch``, before any job is queued."""

    def handle(self, event: OrderPlaced | CustomerRegistered) -> None:
        log.info("audit: %s", event.event_name)
