"""A small application for the kit's own tests, configured in code so no file or environment is read."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from oxide import App, Event, Mode
from oxide.config import Config, ConnectionConfig, DatabaseConfig, parse_database_url

# Nothing listens here: a fake that leaked would make pushes fail loudly instead of reaching a server.
UNREACHABLE = "redis://127.0.0.1:1/0"


@dataclass
class UserRegistered(Event):
    event_name = "auth.user_registered"
    user_id: int
    email: str


@dataclass
class OrderPlaced(Event):
    event_name = "shop.order_placed"
    order_id: int
    total_cents: int


@dataclass
class Calls:
    """What the listeners did, in order: ``(listener name, event)``."""

    seen: list[tuple[str, Event]] = field(default_factory=list)

    def of(self, name: str) -> list[Event]:
        return [event for who, event in self.seen if who == name]


CALLS = Calls()


class SendWelcomeEmail:
    def handle(self, event: UserRegistered) -> None:
        CALLS.seen.append(("SendWelcomeEmail", event))


class AuditLog:
    def handle(self, event: Event) -> None:
        CALLS.seen.append(("AuditLog", event))


class ChargeCard:
    def handle(self, event: OrderPlaced) -> None:
        CALLS.seen.append(("ChargeCard", event))


class NotifyWarehouse:
    """Queued on the sync connection: inline unless that connection is faked."""

    def handle(self, event: OrderPlaced) -> None:
        CALLS.seen.append(("NotifyWarehouse", event))


SEND_WELCOME = f"{__name__}.SendWelcomeEmail"
CHARGE_CARD = f"{__name__}.ChargeCard"


def make_config(
    queue_prefix: str = "", *, url: str = UNREACHABLE, root: Path | None = None, failed_db: Path | None = None
) -> Config:
    """A redis connection (default) and a sync one; failed jobs go to ``failed_db`` if given, else only to the log."""
    connections = {
        "redis": ConnectionConfig(
            name="redis",
            driver="redis",
            url=url,
            queue=f"{queue_prefix}default",
            block_timeout_secs=1.0,
            poll_interval_secs=0.05,
        ),
        "sync": ConnectionConfig(name="sync", driver="sync"),
    }
    databases = {} if failed_db is None else {"sqlite": parse_database_url(f"sqlite:///{failed_db}")}
    return Config(
        config_dir=(root or Path()) / "config",
        root=root or Path(),
        default="redis",
        connections=connections,
        failed_driver="none" if failed_db is None else "database",
        database=DatabaseConfig("sqlite", databases),
    )


def make_app() -> App:
    """The shop-and-signup app every fake test starts from; clears the listeners' record."""
    CALLS.seen.clear()
    app = App(config=make_config())
    app.listen(UserRegistered, SendWelcomeEmail, Mode.queue("redis").on_queue("emails"))
    app.listen(UserRegistered, AuditLog)
    app.listen(OrderPlaced, ChargeCard, Mode.queue("redis").on_queue("high"))
    app.listen(OrderPlaced, NotifyWarehouse, Mode.queue("sync"))
    return app


def row(*cells: str, marked: bool = False) -> re.Pattern[str]:
    """A line of an assertion's table starting with ``cells`` (whole cells, in order), marked ``>`` or not."""
    mark = ">" if marked else " "
    # Columns are two or more spaces apart; a cell may hold single spaces ("emails (+30s)").
    return re.compile(r"^  " + re.escape(mark) + r" \d+  +" + "  +".join(map(re.escape, cells)) + r"(?:  +.*)?$", re.M)
