"""The shop's application object: ``oxide --app shop.app:app queue:work`` (run from ``examples/shop``)."""

from __future__ import annotations

from oxide import App, Mode

from .events import CustomerRegistered, OrderPlaced
from .listeners import AuditLog, ChargeCard, SendReceipt, SendWelcomeEmail, SyncLegacyCrm, UpdateSalesReport

app = App()  # reads ./config and ./.env

app.listen(OrderPlaced, AuditLog)
app.listen(OrderPlaced, ChargeCard, Mode.queue().on_queue("high"))
app.listen(OrderPlaced, SendReceipt, Mode.queue())
app.listen(OrderPlaced, UpdateSalesReport, Mode.queue().on_queue("low"))
app.listen(OrderPlaced, SyncLegacyCrm, Mode.queue().on_queue("low"))
app.listen(CustomerRegistered, AuditLog)
app.listen(CustomerRegistered, SendWelcomeEmail, Mode.queue())
