"""Operator state of a ``redis`` connection, in keys beside the queues'.

Per queue (the base is the queue's list from :func:`~oxide.drivers.reservations.keys_of`):

- ``oxide:queue:<q>:paused``   STRING  JSON ``{"since_ms", "until_ms"}``; a timed pause expires with the key
- ``oxide:queue:<q>:marks``    LIST    ``"<ms>|<body>"``: when observers first saw a job newest (``lua/observe.lua``)
- ``oxide:queue:<q>:metrics``  HASH    ``<outcome>|<listener>``, ``b<i>|<listener>`` (histogram bucket i),
  ``secs|<listener>``: counters that only grow, added to by workers' heartbeats
- ``oxide:queue:<q>:minute:<m>`` HASH  ``done``, ``failed``, ``retried``, ``secs`` of Unix minute m; expires

For the whole connection (the empty queue name, which no queue can have, stands for it):

- ``oxide:queue::restart``     STRING  the restart mark (server time in ms of the last ``queue:restart``)
- ``oxide:queue::workers``     ZSET    worker ids, scored by start time (ms)
- ``oxide:queue::worker:<id>`` STRING  the worker's JSON record, expiring unless its heartbeat refreshes it
- ``oxide:queue::queues``      SET     queue names that workers served or operators paused

``namespace`` puts the connection-wide keys under ``oxide:queue:<namespace>:``: tests use it, so
that a restart signal of one test reaches no other test's workers on the same server.

``oxide:queue:`` is the connection's ``prefix``; on a cluster the names carry a hash tag
(``drivers/keyspace.py``). There, unless the prefix holds the tag, each queue's keys and the
connection-wide keys live on slots of their own: the heartbeat's writes then go in a pipeline
that is not one transaction, and ``observe.lua`` runs on its own, once per queue.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import Any

from ..config import ConnectionConfig, redact_url
from ..drivers.keyspace import PLAIN, KeySpace, keyspace_of
from ..drivers.redis_topology import is_unavailable
from ..drivers.reservations import DELAYED, NOTIFY, READY, RESERVED, keys_of
from ..errors import ConnectionUnavailable
from . import (
    BUCKETS_SECS,
    MINUTES_KEPT,
    OUTCOMES,
    WORKER_TTL_SECS,
    Control,
    MetricDeltas,
    Minute,
    Pause,
    QueueMetrics,
    QueueStats,
    WorkerRecord,
)

__all__ = ["MARKS_KEPT", "MARK_MAX_BYTES", "RedisOps", "connection_key", "queue_ops_key"]

# The namespace of a RedisOps built without one: the CLI's. Tests of the CLI set it, as they would
# give their own keys a prefix, so that their restart signals reach no other test's workers.
DEFAULT_NAMESPACE = ""
MARK_MAX_BYTES = 65536  # a newest job larger than this is not copied into the marks
MARKS_KEPT = 256


def queue_ops_key(queue: str, suffix: str, space: KeySpace = PLAIN) -> str:
    """One of the operator keys of ``queue``: its list's key and ``:<suffix>``."""
    return f"{space.base(queue)}:{suffix}"


def connection_key(name: str, namespace: str = "", space: KeySpace = PLAIN) -> str:
    """A key of the whole connection: the queue list's key of the empty queue name, ``:<name>``."""
    return f"{space.base(namespace)}:{name}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisOps:
    """:class:`~oxide.ops.OpsBackend` on one redis connection."""

    def __init__(
        self, config: ConnectionConfig, *, client: Any = None, namespace: str | None = None, clock_ms: Any = None
    ) -> None:
        from ..drivers.redis import connect

        self.name = config.name
        self.config = config
        self.namespace = DEFAULT_NAMESPACE if namespace is None else namespace
        self.client: Any = client if client is not None else connect(config.url, read_timeout_secs=10)
        self.space = keyspace_of(config.prefix, config.url)
        # Keys on several slots can share no transaction, nor one script call inside a pipeline.
        self._atomic = not self.space.tag_per_queue
        self._observe_apart = self.space.cluster
        self._clock_ms = clock_ms
        text = resources.files("oxide.ops").joinpath("lua", "observe.lua").read_text(encoding="utf-8")
        self._observe = self.client.register_script(text)

    def _key(self, name: str) -> str:
        return connection_key(name, self.namespace, self.space)

    def _qkey(self, queue: str, suffix: str) -> str:
        return queue_ops_key(queue, suffix, self.space)

    def _observe_on(self, pipe: Any, queues: Sequence[str], read: bool) -> list[Any]:
        """Run observe.lua for each queue: queued on ``pipe``, or at once on a cluster (returned)."""
        out = []
        for queue in queues:
            keys = [keys_of(queue, self.space)[READY], self._qkey(queue, "marks")]
            args: list[Any] = [self._now_arg(), MARK_MAX_BYTES, MARKS_KEPT, "1" if read else "0"]
            # A cluster pipeline cannot load a script a node lacks (a promoted replica): call it alone.
            out.append(self._observe(keys=keys, args=args, client=None if self._observe_apart else pipe))
        return out

    @staticmethod
    def _get_many(pipe: Any, keys: Sequence[str]) -> None:
        """Queue one GET per key on ``pipe``: the same one round trip as an MGET, and a cluster
        pipeline, which refuses MGET, takes it too."""
        for key in keys:
            pipe.get(key)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            raise ConnectionUnavailable(
                f"redis connection {self.name!r} ({redact_url(self.config.url)}): {exc}"
            ) from None

    def now_ms(self) -> int:
        if self._clock_ms is not None:
            return int(self._clock_ms())
        with self._errors():
            seconds, micros = self.client.time()
        return int(seconds) * 1000 + int(micros) // 1000

    def _now_arg(self) -> str:
        return "" if self._clock_ms is None else str(int(self._clock_ms()))

    # -- queues ------------------------------------------------------------------------------------

    def stats(self, queues: Sequence[str]) -> list[QueueStats]:
        with self._errors():
            pipe = self.client.pipeline(transaction=False)
            observed = self._observe_on(pipe, queues, read=True)
            for queue in queues:
                keys = keys_of(queue, self.space)
                pipe.zcard(keys[RESERVED])
                pipe.zcard(keys[DELAYED])
            replies = pipe.execute()
            if not self._observe_apart:
                observed, replies = replies[: len(queues)], replies[len(queues) :]
            pauses = self.paused(queues)
        out = []
        for i, queue in enumerate(queues):
            (ready, age_ms), reserved, delayed = observed[i], replies[2 * i], replies[2 * i + 1]
            out.append(
                QueueStats(
                    connection=self.name,
                    queue=queue,
                    ready=int(ready),
                    reserved=int(reserved),
                    delayed=int(delayed),
                    oldest_age_secs=None if int(age_ms) < 0 else int(age_ms) / 1000,
                    paused=pauses.get(queue),
                )
            )
        return out

    def queues(self) -> list[str]:
        from ..drivers import check_queue_name
        from ..errors import QueueNameError

        found: set[str] = set()
        with self._errors():
            found.update(_text(q) for q in self.client.smembers(self._key("queues")))
            for raw in self.client.scan_iter(match=f"{self.space.prefix}*", count=1000):
                name_and_suffix = self.space.split(_text(raw))
                if name_and_suffix is not None and name_and_suffix[1] in (
                    "",
                    "delayed",
                    "reserved",
                    "paused",
                    "metrics",
                ):
                    found.add(name_and_suffix[0])
        names = []
        for name in found:
            try:
                names.append(check_queue_name(name))
            except QueueNameError:
                continue  # another tool's key under our prefix: not a queue of ours
        return sorted(names)

    def clear(self, queue: str) -> int:
        keys = keys_of(queue, self.space)
        with self._errors():
            pipe = self.client.pipeline(transaction=True)
            pipe.llen(keys[READY])
            pipe.zcard(keys[DELAYED])
            pipe.delete(keys[READY], keys[DELAYED], keys[NOTIFY], self._qkey(queue, "marks"))
            ready, delayed, _ = pipe.execute()
        return int(ready) + int(delayed)

    # -- pause and restart -------------------------------------------------------------------------

    def pause(self, queue: str, duration_secs: float | None) -> Pause:
        now = self.now_ms()
        until = None if duration_secs is None else now + max(1, round(duration_secs * 1000))
        value = json.dumps({"since_ms": now, "until_ms": until})
        with self._errors():
            pipe = self.client.pipeline(transaction=self._atomic)
            if until is None:
                pipe.set(self._qkey(queue, "paused"), value)
            else:
                pipe.set(self._qkey(queue, "paused"), value, px=until - now)
            pipe.sadd(self._key("queues"), queue)
            pipe.execute()
        return Pause(now, until)

    def resume(self, queue: str) -> bool:
        with self._errors():
            return bool(self.client.delete(self._qkey(queue, "paused")))

    def paused(self, queues: Sequence[str]) -> dict[str, Pause]:
        if not queues:
            return {}
        with self._errors():
            pipe = self.client.pipeline(transaction=False)
            self._get_many(pipe, [self._qkey(q, "paused") for q in queues])
            replies = pipe.execute()
        return _pauses(queues, replies)

    def request_restart(self) -> str:
        mark = str(self.now_ms())
        with self._errors():
            self.client.set(self._key("restart"), mark)
        return mark

    def restart_mark(self) -> str | None:
        with self._errors():
            value = self.client.get(self._key("restart"))
        return None if value is None else _text(value)

    # -- workers -----------------------------------------------------------------------------------

    def beat(
        self, record: WorkerRecord, deltas: MetricDeltas, queues: Sequence[str], ttl_secs: float = WORKER_TTL_SECS
    ) -> Control:
        ttl_ms = round(ttl_secs * 1000)
        with self._errors():
            pipe = self.client.pipeline(transaction=self._atomic)
            pipe.set(self._key(f"worker:{record.id}"), json.dumps(record.to_dict()), px=ttl_ms)
            pipe.zadd(self._key("workers"), {record.id: round(record.started_at * 1000)}, nx=True)
            if queues:
                pipe.sadd(self._key("queues"), *queues)
            self._add_metrics(pipe, deltas)
            self._observe_on(pipe, queues, read=False)
            pipe.get(self._key("restart"))
            if queues:
                self._get_many(pipe, [self._qkey(q, "paused") for q in queues])
            replies = pipe.execute()
        # The last replies: the restart mark, then one per queue's pause.
        restart = replies[-1 - len(queues)]
        paused = _pauses(queues, replies[len(replies) - len(queues) :])
        return Control(frozenset(paused), None if restart is None else _text(restart))

    def _add_metrics(self, pipe: Any, deltas: MetricDeltas) -> None:
        if not deltas:
            return
        minute = self.now_ms() // 60_000
        for (queue, listener), counts in deltas.counts.items():
            key = self._qkey(queue, "metrics")
            for outcome, n in counts.items():
                pipe.hincrby(key, f"{outcome}|{listener}", n)
            for index, n in deltas.buckets.get((queue, listener), {}).items():
                pipe.hincrby(key, f"b{index}|{listener}", n)
            pipe.hincrbyfloat(key, f"secs|{listener}", deltas.seconds.get((queue, listener), 0.0))
        for queue, figures in deltas.per_queue().items():
            key = self._qkey(queue, f"minute:{minute}")
            for name, value in figures.items():
                if name == "secs":
                    pipe.hincrbyfloat(key, name, value)
                else:
                    pipe.hincrby(key, name, int(value))
            pipe.expire(key, MINUTES_KEPT * 60)

    def forget_worker(self, worker_id: str) -> None:
        with self._errors():
            pipe = self.client.pipeline(transaction=self._atomic)
            pipe.delete(self._key(f"worker:{worker_id}"))
            pipe.zrem(self._key("workers"), worker_id)
            pipe.execute()

    def workers(self) -> list[WorkerRecord]:
        with self._errors():
            ids = [_text(i) for i in self.client.zrange(self._key("workers"), 0, -1)]
            if not ids:
                return []
            pipe = self.client.pipeline(transaction=False)
            self._get_many(pipe, [self._key(f"worker:{i}") for i in ids])
            values = pipe.execute()
            # A record that expired is a worker that stopped beating (killed): forget its id too.
            gone = [i for i, v in zip(ids, values, strict=True) if v is None]
            if gone:
                self.client.zrem(self._key("workers"), *gone)
        return [WorkerRecord.from_dict(json.loads(v)) for v in values if v is not None]

    # -- metrics -----------------------------------------------------------------------------------

    def metrics(self) -> list[QueueMetrics]:
        queues = self.queues()
        with self._errors():
            pipe = self.client.pipeline(transaction=False)
            for queue in queues:
                pipe.hgetall(self._qkey(queue, "metrics"))
            hashes = pipe.execute()
        out = []
        for queue, fields in zip(queues, hashes, strict=True):
            per: dict[str, dict[str, str]] = {}
            for raw_name, raw_value in fields.items():
                name, _, listener = _text(raw_name).partition("|")
                per.setdefault(listener, {})[name] = _text(raw_value)
            for listener, values in sorted(per.items()):
                out.append(
                    QueueMetrics(
                        queue=queue,
                        listener=listener,
                        counts={o: int(values.get(o, 0)) for o in OUTCOMES},
                        buckets=tuple(int(values.get(f"b{i}", 0)) for i in range(len(BUCKETS_SECS) + 1)),
                        seconds=float(values.get("secs", 0.0)),
                    )
                )
        return out

    def minutes(self, queues: Sequence[str], last: int = 60) -> list[Minute]:
        now_minute = self.now_ms() // 60_000
        span = range(now_minute - last + 1, now_minute + 1)
        with self._errors():
            pipe = self.client.pipeline(transaction=False)
            for queue in queues:
                for minute in span:
                    pipe.hgetall(self._qkey(queue, f"minute:{minute}"))
            replies = iter(pipe.execute())
        out = []
        for queue in queues:
            for minute in span:
                fields = {_text(k): _text(v) for k, v in next(replies).items()}
                if fields:
                    out.append(
                        Minute(
                            queue=queue,
                            minute=minute,
                            done=int(fields.get("done", 0)),
                            failed=int(fields.get("failed", 0)),
                            retried=int(fields.get("retried", 0)),
                            seconds=float(fields.get("secs", 0.0)),
                        )
                    )
        return sorted(out, key=lambda m: (m.minute, m.queue))

    def close(self) -> None:
        self.client.close()


def _pauses(queues: Sequence[str], values: Sequence[Any]) -> dict[str, Pause]:
    out = {}
    for queue, value in zip(queues, values, strict=True):
        if value is not None:
            data = json.loads(value)
            out[queue] = Pause(int(data["since_ms"]), None if data.get("until_ms") is None else int(data["until_ms"]))
    return out
