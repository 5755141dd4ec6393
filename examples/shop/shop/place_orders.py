"""Dispatch some shop events: ``python -m shop.place_orders [COUNT]`` (run from ``examples/shop``)."""

from __future__ import annotations

import logging
import sys

from .app import app
from .events import CustomerRegistered, OrderPlaced


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    count = int(argv[0]) if argv else 3
    for n in range(1, count + 1):
        app.dispatch(CustomerRegistered(customer_id=n, email=f"customer{n}@example.com"))
        app.dispatch(OrderPlaced(order_id=1000 + n, email=f"customer{n}@example.com", total_cents=1999 * n))
    print(f"dispatched {count} registrations and {count} orders")
    app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
