"""The ``redis`` driver: each queue is the Redis list ``oxide:queue:<queue>``.

Producers ``LPUSH``; a worker takes from the tail, so each queue is FIFO. A
take over several queues names every queue in priority order and the server
takes from the first non-empty one, in one round trip: the ``take`` script
(reservations on, the default; ``reserve`` every so often and when idle) or a
multi-key ``BRPOP`` (reservations off).
The keys and scripts are described in ``docs/reliability.md``.

redis-py is imported only when a redis connection is first used. Its own
retry of failed commands is switched off: a blocking pop retried after a lost
reply would hide a lost job, so reconnection is the worker's decision, logged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..config import ConnectionConfig, redact_url
from ..errors import ConfigError, ConnectionUnavailable
from . import Delivery, JobRunner, delay_ms, delivered
from .keyspace import keyspace_of
from .redis_topology import is_unavailable, open_client, write_replicated
from .redis_topology import parse as parse_topology

if TYPE_CHECKING:
    import redis

__all__ = ["KEY_PREFIX", "RedisDriver", "connect", "queue_key"]

KEY_PREFIX = "oxide:queue:"
# A busy worker moves due delayed and expired jobs back into its queues at most this often (every
# take that finds nothing does it too): it costs two commands per queue, more than the take.
MIGRATE_EVERY_SECS = 0.1


def queue_key(queue: str) -> str:
    """The Redis list that holds ``queue``'s ready jobs."""
    return KEY_PREFIX + queue


def redact(url: str) -> str:
    """``url`` with its password hidden, fit for logs and error messages."""
    return redact_url(url)


def connect(url: str, *, read_timeout_secs: float | None = None) -> redis.Redis:
    """A redis-py client for ``url`` with no hidden retries; a clear error if redis-py is missing."""
    try:
        import redis as redis_py
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError:
        raise ConfigError(
            "the redis driver needs redis-py, which is not installed: pip install 'oxide-queue[redis]'"
        ) from None
    options: dict[str, Any] = {
        "socket_connect_timeout": 5,
        "socket_timeout": read_timeout_secs,
        "socket_keepalive": True,
        "retry": Retry(NoBackoff(), 0),
        "retry_on_timeout": False,
    }
    try:
        if parse_topology(url) is not None:  # a cluster or Sentinel: see redis_topology
            return open_client(url, **options)  # type: ignore[no-any-return]
        return redis_py.Redis.from_url(url, **options)
    except ValueError as exc:
        raise ConfigError(f"bad redis URL {redact(url)!r}: {exc}") from None


def _as_bytes(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


class RedisDriver:
    """Jobs in Redis lists, taken in strict priority order, held in reservations until acknowledged.

    With ``visibility_timeout_secs > 0`` (the default, 90) a take is the
    ``reserve`` script: the job moves atomically into the queue's reserved set,
    so a worker that dies holding it loses nothing. An idle worker blocks on the
    queues' ``:notify`` lists (one BRPOP for all of them) that our producers
    signal when they fill an empty queue; jobs ``LPUSH``ed by a plain producer, which signals nothing, are
    found by the next reserve, at most ``poll_interval_secs`` later.

    With ``visibility_timeout_secs = 0`` a take is a plain ``BRPOP`` over the
    queue lists, as the Rust original does: one round trip, but a job in the
    hands of a worker that is killed is gone.
    """

    consumable = True

    def __init__(
        self,
        config: ConnectionConfig,
        runner: JobRunner | None = None,
        client: Any = None,
        *,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        from .reservations import Reservations

        self.name = config.name
        self.config = config
        # The socket must outlive the longest blocking call, or redis-py reports a timeout mid-wait.
        # Typed Any: redis-py's annotations cover its async client too, so a sync reply type-checks as awaitable.
        self._client: Any = (
            client if client is not None else connect(config.url, read_timeout_secs=config.block_timeout_secs + 10)
        )
        self.reserving = config.visibility_timeout_secs > 0
        self._next_migration = 0.0  # time.monotonic() of the next take that migrates
        # With an injected clock (tests) time moves only when the test says so: migrate on every take,
        # so that what a take returns depends on that clock alone, never on how fast the test ran.
        self._migrate_every_secs = MIGRATE_EVERY_SECS if clock_ms is None else 0.0
        self.space = keyspace_of(config.prefix, config.url)  # every key name comes from here
        self.scripts = Reservations(
            self._client,
            visibility_ms=round(config.visibility_timeout_secs * 1000),
            clock_ms=clock_ms,
            space=self.space,
        )

    @property
    def client(self) -> redis.Redis:
        """The underlying redis-py client (tests and tools use it to inspect keys)."""
        client: redis.Redis = self._client
        return client

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            raise self._unavailable_error(exc) from None

    def _unavailable_error(self, exc: BaseException) -> ConnectionUnavailable:
        return ConnectionUnavailable(f"redis connection {self.name!r} ({redact(self.config.url)}): {exc}")

    def push(self, queue: str, body: str) -> None:
        self.push_many(queue, [body])

    def push_many(self, queue: str, bodies: Sequence[str]) -> None:
        if not bodies:
            return
        with self._errors():
            if self.config.wait_replicas:
                # One LPUSH of many values inserts them left to right: the first body is taken first.
                replies = self._replicated(queue, lambda pipe: pipe.lpush(self.space.base(queue), *bodies))
                if self.reserving:  # a worker with reservations may sleep on an empty queue: wake it
                    self.scripts.pushed(queue, len(bodies), int(replies[0]))
            elif self.reserving:
                self.scripts.push(queue, bodies)
            else:
                self._client.lpush(self.space.base(queue), *bodies)

    def _replicated(self, queue: str, write: Callable[[Any], object]) -> list[Any]:
        """``write`` then WAIT for ``wait_replicas`` replicas (see redis_topology.write_replicated);
        the replies to what ``write`` queued."""
        timeout_ms = max(1, round(self.config.wait_timeout_secs * 1000))
        return write_replicated(self._client, self.space.base(queue), write, self.config.wait_replicas, timeout_ms)

    def later(self, queue: str, bodies: Sequence[str], delay_secs: float) -> None:
        if delay_secs <= 0:
            self.push_many(queue, bodies)
            return
        with self._errors():
            if self.config.wait_replicas:
                delay = delay_ms(delay_secs)
                self._replicated(queue, lambda pipe: self.scripts.later(queue, bodies, delay, client=pipe))
            else:
                self.scripts.later(queue, bodies, delay_ms(delay_secs))

    def pop(self, queues: Sequence[str], timeout_secs: float) -> Delivery | None:
        taken = self.take(queues, timeout_secs)[1]
        return taken[0] if taken else None

    def take(
        self, queues: Sequence[str], timeout_secs: float, *, limit: int = 1, done: Sequence[Delivery] = ()
    ) -> tuple[list[bool], list[Delivery]]:
        """Acknowledge ``done`` and take up to ``limit`` jobs from the first non-empty queue.

        With reservations on, a busy worker pays one round trip (the ``reserve`` script does
        both); an idle one also blocks on the queues' ``:notify`` lists, then tries once more.
        With them off, ``done`` needs nothing and one job is taken with a plain ``BRPOP``.
        Returns, for each job of ``done``, whether its reservation was still held, and the jobs taken.
        """
        if not self.reserving:
            with self._errors():
                if limit < 1:  # only acknowledging: nothing to do without reservations, and nothing to take
                    return [True] * len(done), []
                delivery = self._brpop(queues, timeout_secs)
            return [True] * len(done), [] if delivery is None else [delivery]
        receipts = [d.receipt for d in done if d.receipt is not None] if done else []
        now = time.monotonic()
        migrate = now >= self._next_migration
        scripts = self.scripts
        try:
            if migrate:
                self._next_migration = now + self._migrate_every_secs
                held, taken = scripts.ack_and_reserve(receipts, queues, limit)
            else:  # the busy take: most takes of a busy worker, so the shortest way there
                held, taken = scripts.take(receipts, queues if type(queues) is tuple else tuple(queues), limit)
            if not taken and limit > 0:
                if not migrate:
                    # Nothing ready: maybe something is due. Look before going to sleep.
                    self._next_migration = now + self._migrate_every_secs
                    taken = scripts.reserve(queues, limit)
                if not taken and timeout_secs > 0:  # BRPOP with 0 would block for ever
                    scripts.wait(queues, min(timeout_secs, self.config.poll_interval_secs))
                    taken = scripts.reserve(queues, limit, pass_on=True)
        except Exception as exc:  # the take's own catch: no context manager per call on the hot path
            if not is_unavailable(exc):
                raise
            raise self._unavailable_error(exc) from None
        if len(held) == len(done):
            acked = held
        else:
            flags = iter(held)
            acked = [True if d.receipt is None else next(flags) for d in done]
        if len(taken) == 1:
            job = taken[0]
            return acked, [delivered(job.queue, job.body, job, job.crashes)]
        return acked, [delivered(job.queue, job.body, job, job.crashes) for job in taken]

    def give_back(self, deliveries: Sequence[Delivery]) -> int:
        """Return taken jobs never started to the front of their queues, without counting an attempt."""
        receipts = [d.receipt for d in deliveries if d.receipt is not None]
        plain = [d for d in deliveries if d.receipt is None]
        with self._errors():
            back = self.scripts.give_back(receipts) if receipts else 0
            # Without reservations a taken job exists only here: back onto the tail, newest first.
            for delivery in reversed(plain):
                self._client.rpush(self.space.base(delivery.queue), delivery.body)
        return back + len(plain)

    def _brpop(self, queues: Sequence[str], timeout_secs: float) -> Delivery | None:
        now = time.monotonic()
        if now >= self._next_migration:  # due delayed jobs: a second round trip, so not on every take
            self._next_migration = now + self._migrate_every_secs
            self.scripts.promote(queues)
        if timeout_secs <= 0:  # no wait asked for, and BRPOP with 0 would block for ever
            for queue in queues:
                body = self._client.rpop(self.space.base(queue))
                if body is not None:
                    return Delivery(queue=queue, body=_as_bytes(body))
            return None
        keys = {self.space.base(q): q for q in queues}
        reply = self._client.brpop(list(keys), timeout=timeout_secs)
        if reply is None:
            return None
        key, body = reply
        return Delivery(queue=keys[_as_bytes(key).decode()], body=_as_bytes(body))

    def ack(self, delivery: Delivery) -> bool:
        if delivery.receipt is None:
            return True
        with self._errors():
            return self.scripts.ack(delivery.receipt)

    def release(self, delivery: Delivery, body: str, delay_secs: float) -> bool:
        if delivery.receipt is None:
            self.later(delivery.queue, [body], delay_secs)
            return True
        with self._errors():
            return self.scripts.release(delivery.receipt, body, delay_ms(delay_secs))

    def extend(self, delivery: Delivery) -> bool:
        if delivery.receipt is None:
            return True
        with self._errors():
            return self.scripts.extend(delivery.receipt)

    def size(self, queue: str) -> int:
        with self._errors():
            return int(self._client.llen(self.space.base(queue)))

    def close(self) -> None:
        if self.scripts.lane is not None:
            self.scripts.lane.close()
        self._client.close()
