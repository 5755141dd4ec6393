"""``RedisFake``: the app's redis connections on fakeredis, through the real Redis driver and its Lua scripts.

Where :class:`~oxide.testing.QueueFake` replaces the driver, this keeps it:
jobs go through the same ``RedisDriver``, reservations and scripts as in
production, into an in-process fakeredis server, with the scripts reading a
:class:`FakeClock` instead of the server's time. Use it to test what a job
looks like in Redis, or to drain it through the worker exactly as deployed.
Needs ``fakeredis[lua]`` (``pip install 'oxide-queue[testing]'``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..config import ConnectionConfig
from ..drivers.redis import KEY_PREFIX, RedisDriver
from ..drivers.reservations import SUFFIXES, keys_of
from ..errors import ConfigError
from .clock import FakeClock
from .drivers import InstalledFake, install

if TYPE_CHECKING:
    from ..app import App

__all__ = ["FakeRedisDriver", "RedisFake", "fake_redis", "new_fakeredis_client"]

_READY, _RESERVED, _DELAYED = 0, 1, 2


def new_fakeredis_client() -> Any:
    """A fakeredis client on a server of its own, with Lua; a clear error if fakeredis is missing."""
    try:
        import fakeredis
    except ImportError:
        raise ConfigError(
            "RedisFake needs fakeredis with Lua, which is not installed: pip install 'oxide-queue[testing]'"
        ) from None
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


class FakeRedisDriver(RedisDriver):
    """The Redis driver unchanged, on a fake clock, telling a drain which queues it used and what is due when."""

    def __init__(self, config: ConnectionConfig, client: Any, clock: FakeClock) -> None:
        super().__init__(config, client=client, clock_ms=clock.ms)
        self.clock = clock
        self._used: dict[str, None] = {}  # queue names in first-use order

    def push_many(self, queue: str, bodies: Sequence[str]) -> None:
        self._used.setdefault(queue)
        super().push_many(queue, bodies)

    def later(self, queue: str, bodies: Sequence[str], delay_secs: float) -> None:
        self._used.setdefault(queue)
        super().later(queue, bodies, delay_secs)

    def queue_names(self) -> list[str]:
        """Queues pushed to through this driver, then any other found in Redis (pushed by hand), by name."""
        found: set[str] = set()
        for raw in self.client.scan_iter(match=f"{KEY_PREFIX}*", count=1000):
            key = (raw.decode() if isinstance(raw, bytes) else str(raw))[len(KEY_PREFIX) :]
            for suffix in SUFFIXES[1:]:
                if key.endswith(suffix):
                    key = key[: -len(suffix)]
                    break
            found.add(key)
        return list(self._used) + sorted(found - set(self._used))

    def has_jobs(self, queues: Sequence[str]) -> bool:
        client = self.client
        return any(
            client.llen(keys[_READY]) or client.zcard(keys[_DELAYED]) or client.zcard(keys[_RESERVED])
            for keys in map(keys_of, queues)
        )

    def ready(self, queues: Sequence[str]) -> bool:
        client, now = self.client, self.clock.ms()
        return any(
            client.llen(keys[_READY])
            or client.zcount(keys[_DELAYED], "-inf", now)
            or (self.reserving and client.zcount(keys[_RESERVED], "-inf", now))
            for keys in map(keys_of, queues)
        )

    def next_due(self, queues: Sequence[str]) -> float | None:
        client = self.client
        scores: list[float] = []
        for keys in map(keys_of, queues):
            for key in (keys[_DELAYED], keys[_RESERVED]):
                first = client.zrange(key, 0, 0, withscores=True)
                if first:
                    scores.append(float(first[0][1]))
        return min(scores) / 1000 if scores else None


class RedisFake(InstalledFake):
    """Every redis connection of an app (or the ones named) on one private fakeredis server.

    A plain object (``r = RedisFake(app)`` ... ``r.restore()``) or a context
    manager (``with fake_redis(app) as r:``). ``r.client`` is a redis-py client
    on the server, to look at keys; ``r.clock`` is the scripts' clock.
    """

    def __init__(self, app: App, connections: Iterable[str] | None = None, *, clock: FakeClock | None = None) -> None:
        self.app = app
        self.clock = clock if clock is not None else FakeClock()
        if connections is None:
            names = [name for name, conn in app.config.connections.items() if conn.driver == "redis"]
            if not names:
                raise ConfigError(
                    'RedisFake: this app has no connection with driver = "redis"; '
                    f"its connections: {', '.join(app.config.connections) or 'none'}"
                )
        else:
            names = [app.config.connection(n).name for n in connections]
        self.client = new_fakeredis_client()
        self.drivers: dict[str, FakeRedisDriver] = {}
        for name in dict.fromkeys(names):
            conn = app.config.connection(name)
            if conn.driver != "redis":
                raise ConfigError(f"RedisFake: connection {name!r} uses the {conn.driver} driver, not redis")
            driver = FakeRedisDriver(conn, self.client, self.clock)
            install(app, name, driver)
            self.drivers[name] = driver
        self.active = True

    def __repr__(self) -> str:
        return f"RedisFake(connections={list(self.drivers)})"

    def size(self, queue: str) -> int:
        """How many jobs are ready in ``queue`` (``LLEN oxide:queue:<queue>``)."""
        return int(self.client.llen(keys_of(queue)[_READY]))

    def jobs(self, queue: str) -> list[str]:
        """The bodies ready in ``queue``, next to be taken first."""
        return [
            b.decode() if isinstance(b, bytes) else str(b)
            for b in reversed(self.client.lrange(keys_of(queue)[_READY], 0, -1))
        ]


def fake_redis(app: App, connections: Iterable[str] | None = None, *, clock: FakeClock | None = None) -> RedisFake:
    """Put ``app``'s redis connections on fakeredis: ``with fake_redis(app) as r: ...`` restores them at the end."""
    return RedisFake(app, connections, clock=clock)
