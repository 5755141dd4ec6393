"""What happens in the shop. Each event's dataclass fields are its payload on the wire."""

from __future__ import annotations

from dataclasses import dataclass

from oxide import Event


@dataclass
class OrderPlaced(Event):
    event_name = "shop.order_placed"

    order_id: int
    email: str
    total_cents: int


@dataclass
class CustomerRegistered(Event):
    event_name = "shop.customer_registered"

    customer_id: int
    email: str
