"""The ``redis`` driver: each queue is the Redis list ``oxide:queue:<queue>``.

Producers ``LPUSH``; a worker takes from the tail, so each queue is FIFO. A
take over several queues is one ``BRPOP`` naming every key in priority order:
Redis walks the keys left to right and pops from the first non-empty list, so
priority is decided by the server in one round trip.

redis-py is imported only when a redis connection is first used. Its own
retry of failed commands is switched off: a blocking pop retried after a lost
reply would hide a lost job, so reconnection is the worker's decision, logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..config import ConnectionConfig
from ..errors import ConfigError, ConnectionUnavailable
from . import Delivery, JobRunner

if TYPE_CHECKING:
    import redis

__all__ = ["KEY_PREFIX", "RedisDriver", "connect", "queue_key"]

KEY_PREFIX = "oxide:queue:"
_PREFIX_BYTES = KEY_PREFIX.encode()


def queue_key(queue: str) -> str:
    """The Redis list that holds ``queue``'s ready jobs."""
    return KEY_PREFIX + queue


def redact(url: str) -> str:
    """``url`` with its password hidden, fit for logs and error messages."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


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
    try:
        return redis_py.Redis.from_url(
            url,
            socket_connect_timeout=5,
            socket_timeout=read_timeout_secs,
            socket_keepalive=True,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
        )
    except ValueError as exc:
        raise ConfigError(f"bad redis URL {redact(url)!r}: {exc}") from None


def _as_bytes(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


class RedisDriver:
    """Jobs in Redis lists; one ``BRPOP`` over all keys takes in strict priority order."""

    consumable = True

    def __init__(self, config: ConnectionConfig, runner: JobRunner | None = None, client: Any = None) -> None:
        self.name = config.name
        self.config = config
        # The socket must outlive the longest blocking call, or redis-py reports a timeout mid-wait.
        self._client = (
            client if client is not None else connect(config.url, read_timeout_secs=config.block_timeout_secs + 10)
        )

    @property
    def client(self) -> redis.Redis:
        """The underlying redis-py client (tests and tools use it to inspect keys)."""
        client: redis.Redis = self._client
        return client

    def _unavailable(self, exc: Exception) -> ConnectionUnavailable:
        return ConnectionUnavailable(f"redis connection {self.name!r} ({redact(self.config.url)}): {exc}")

    def push(self, queue: str, body: str) -> None:
        import redis as redis_py

        try:
            self._client.lpush(queue_key(queue), body)
        except (redis_py.ConnectionError, redis_py.TimeoutError) as exc:
            raise self._unavailable(exc) from None

    def push_many(self, queue: str, bodies: Sequence[str]) -> None:
        import redis as redis_py

        if not bodies:
            return
        try:
            # One LPUSH with many values inserts them left to right, so the first body is taken first.
            self._client.lpush(queue_key(queue), *bodies)
        except (redis_py.ConnectionError, redis_py.TimeoutError) as exc:
            raise self._unavailable(exc) from None

    def pop(self, queues: Sequence[str], timeout_secs: float) -> Delivery | None:
        import redis as redis_py

        keys = [queue_key(q) for q in queues]
        try:
            reply = self._client.brpop(keys, timeout=timeout_secs)
        except (redis_py.ConnectionError, redis_py.TimeoutError) as exc:
            raise self._unavailable(exc) from None
        if reply is None:
            return None
        key, body = reply
        return Delivery(queue=_as_bytes(key)[len(_PREFIX_BYTES) :].decode(), body=_as_bytes(body))

    def size(self, queue: str) -> int:
        import redis as redis_py

        try:
            return int(self._client.llen(queue_key(queue)))
        except (redis_py.ConnectionError, redis_py.TimeoutError) as exc:
            raise self._unavailable(exc) from None

    def close(self) -> None:
        self._client.close()
