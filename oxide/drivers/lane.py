"""The hot commands' own way to the server: one connection per thread, commands packed ahead.

A worker's take and a producer's push are one round trip each, and redis-py's generic command path
costs more client time than the round trip itself: taking a connection from the pool and giving it
back, encoding every argument in Python before hiredis packs it, its observability hooks. A
:class:`Lane` skips that path for the few commands made per job. Each thread gets a connection of
its own, made with the client's own connection settings and never shared, and each command's
constant part (the script's SHA and keys, a queue's key) is packed once by the caller
(:func:`packed_head`); only the part that changes per call is packed per call. Where the connection
is a plain one with redis-py's hiredis reader, a call writes to its socket and reads with its reader
directly (:func:`_wire`), without redis-py's per-call steps around them (docs/performance.md).

A connection that fails, or is interrupted mid-reply, is closed and made again on the next call, as
redis-py does; errors are redis-py's own, so callers handle them as any other command's.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import weakref
from collections.abc import Sequence
from typing import Any

__all__ = ["Lane", "LaneScript", "lane_for", "packed", "packed4", "packed_head"]

# A connection belongs to the process that made it: a forked child makes its own. The pid is kept
# here and renewed at a fork, rather than asked of the system on every call.
_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def _bulk(value: bytes | str | int) -> bytes:
    if isinstance(value, str):
        value = value.encode()
    elif isinstance(value, int):
        value = b"%d" % value
    return b"$%d\r\n%b\r\n" % (len(value), value)


def packed_head(*args: bytes | str | int) -> bytes:
    """The first arguments of a command, packed as RESP bulk strings (without the array's length)."""
    return b"".join(_bulk(arg) for arg in args)


# The header of a bulk string of each length up to _HEADS_UP_TO, made once: formatting one per
# argument (b"$%d\r\n" % len(arg)) was two thirds of the time to pack a take.
_HEADS_UP_TO = 1024
_HEADS = [b"$%d\r\n" % size for size in range(_HEADS_UP_TO)]
_CRLF = b"\r\n"


def packed(head_count: int, head: bytes, tail: Sequence[bytes]) -> bytes:
    """One whole command: ``head`` (``head_count`` packed arguments) followed by ``tail``."""
    parts = [b"*%d\r\n" % (head_count + len(tail)), head]
    append = parts.append
    for arg in tail:
        size = len(arg)
        append(_HEADS[size] if size < _HEADS_UP_TO else b"$%d\r\n" % size)
        append(arg)
        append(_CRLF)
    return b"".join(parts)


def packed4(head: bytes, a: bytes, b: bytes, c: bytes, d: bytes) -> bytes:
    """``head`` (the array's header and its first arguments, packed: :meth:`LaneScript.prefix`)
    followed by four arguments, without a loop: the busy worker's take, once per job."""
    size_a, size_b, size_c, size_d = len(a), len(b), len(c), len(d)
    up_to, heads, crlf = _HEADS_UP_TO, _HEADS, _CRLF
    return b"".join(
        (
            head,
            heads[size_a] if size_a < up_to else b"$%d\r\n" % size_a,
            a,
            crlf,
            heads[size_b] if size_b < up_to else b"$%d\r\n" % size_b,
            b,
            crlf,
            heads[size_c] if size_c < up_to else b"$%d\r\n" % size_c,
            c,
            crlf,
            heads[size_d] if size_d < up_to else b"$%d\r\n" % size_d,
            d,
            crlf,
        )
    )


# A connection's socket, its reply reader, the reader's buffer, the reader's "not enough data", the
# type of a RESP3 push and redis-py's handler of one.
_Wire = tuple[Any, Any, bytearray, object, type, Any]


class _NoPush:
    """The push type of a reader that reads none: no reply is one."""


def _wire(connection: Any) -> _Wire | None:
    """What :meth:`Lane.call` reads and writes directly: for a plain TCP, TLS or Unix socket
    connection with redis-py's hiredis reader; None for any other (a Sentinel's connection, which
    reads its replies its own way; a connection with a health check; no hiredis), which keeps
    redis-py's path.

    redis-py's path per call (health check, host text for errors, timeout and push handling) cost
    more client time than the round trip's own reads and writes (docs/performance.md). The reader
    is the connection's own, so error replies are redis-py's exceptions all the same, and a RESP3
    push that comes before a reply goes to redis-py's handler, as redis-py's read does.
    """
    from redis.connection import AbstractConnection

    cls = type(connection)
    parser: Any = getattr(connection, "_parser", None)
    reader = getattr(parser, "_reader", None)
    buffer = getattr(parser, "_buffer", None)
    more = getattr(sys.modules.get(type(parser).__module__), "NOT_ENOUGH_DATA", None)
    push = getattr(parser, "_hiredis_PushNotificationType", None) or _NoPush
    if (
        getattr(cls, "read_response", None) is not AbstractConnection.read_response
        or getattr(cls, "send_packed_command", None) is not AbstractConnection.send_packed_command
        or type(parser).__name__ != "_HiredisParser"
        or reader is None
        or not isinstance(buffer, bytearray)
        or more is None
        or not hasattr(parser, "handle_push_response")
        or getattr(connection, "_sock", None) is None
        or getattr(connection, "health_check_interval", None)
    ):
        return None
    return (connection._sock, reader, buffer, more, push, parser.handle_push_response)


def _where(connection: Any) -> str:
    path = getattr(connection, "path", None)  # a Unix socket's
    return str(path) if path else f"{getattr(connection, 'host', '?')}:{getattr(connection, 'port', '?')}"


class Lane:
    """Per-thread connections to the server of a redis-py client, for commands packed by the caller."""

    def __init__(self, client: Any) -> None:
        import redis

        self.client = client
        self._pool = client.connection_pool
        self._local = threading.local()
        self._opened: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._response_error = redis.ResponseError
        self._no_script = redis.exceptions.NoScriptError
        self._connection_error = redis.ConnectionError
        self._timeout_error = redis.TimeoutError
        self._direct = True  # False: every call by redis-py's send_packed_command and read_response
        self._generation = 0  # close() moves it on: every thread then makes a new connection
        self.connections = 0  # connections made so far: a new one may reach another server (a failover)

    def _held(self) -> tuple[Any, Any, _Wire | None]:
        """This thread's (key, connection, wire), made and connected on its first call, in a forked
        child, or after close()."""
        held = getattr(self._local, "held", None)
        key = (_pid, self._generation)
        if held is None or held[0] != key:
            connection = self._pool.connection_class(**self._pool.connection_kwargs)
            # Connected here, as redis-py's pool does before handing a connection out: a connection that
            # connects by itself on its first send skips the class's own connect() (Sentinel's asks the
            # sentinels for the master there, and would otherwise reach the default host).
            connection.connect()
            held = self._local.held = (key, connection, _wire(connection) if self._direct else None)
            with self._lock:
                self._opened.add(connection)
                self.connections += 1
        return held

    def _connection(self) -> Any:
        return self._held()[1]

    def connected(self) -> int:
        """Connect this thread if it has no connection yet; how many connections were made so far (a
        caller that keeps something per server, such as its clock, knows a new one by this number)."""
        held = getattr(self._local, "held", None)
        if held is None or held[0] != (_pid, self._generation):  # asked once per take: the check of call()
            self._held()
        return self.connections

    def _drop(self, connection: Any) -> None:
        """Close this thread's connection after a failure: the next call makes and connects a new one."""
        connection.disconnect()
        self._local.held = None

    def call(self, command: bytes) -> Any:
        """Send one packed command and return its reply (an error reply raises redis-py's error)."""
        held = getattr(self._local, "held", None)
        if held is None or held[0] != (_pid, self._generation):
            held = self._held()
        connection, wire = held[1], held[2]
        try:
            if wire is None:
                connection.send_packed_command((command,))
                return connection.read_response()
            # The connection's own socket and reply reader, without the generic path around them.
            sock, reader, buffer, more, push, on_push = wire
            sock.sendall(command)
            reply = reader.gets()
            while True:
                while reply is more:
                    size = sock.recv_into(buffer)
                    if not size:
                        raise self._connection_error("Connection closed by server.")
                    reader.feed(buffer, 0, size)
                    reply = reader.gets()
                if type(reply) is not push:
                    break
                on_push(reply)
                reply = reader.gets()
            if isinstance(reply, Exception):  # an error reply, made by redis-py's own error parser
                raise reply
            return reply
        except self._response_error:
            raise  # the server answered: the connection is fine
        except BaseException as exc:
            # Cut mid-way (a lost connection, a signal's exception): a reply may be left unread.
            self._drop(connection)
            if wire is not None and isinstance(exc, OSError):  # as redis-py words a failed read or write
                error = self._timeout_error if isinstance(exc, TimeoutError) else self._connection_error
                raise error(f"Error while talking to {_where(connection)}: {exc}") from exc
            raise

    def call_many(self, commands: Sequence[bytes]) -> list[Any]:
        """Send packed commands in one write and return their replies, in order; the first error raises."""
        connection = self._connection()
        replies: list[Any] = []
        error: BaseException | None = None
        try:
            connection.send_packed_command([b"".join(commands)] if len(commands) > 1 else commands)
            for _ in commands:
                try:
                    replies.append(connection.read_response())
                except self._response_error as exc:  # the connection is fine: read the other replies
                    error = error or exc
        except BaseException:
            # Cut mid-way (a lost connection, a signal's exception): replies may be left unread.
            self._drop(connection)
            raise
        if error is not None:
            raise error
        return replies

    def script(self, text: str, head_args: Sequence[bytes | str | int], key_count: int) -> LaneScript:
        """A Lua script called with ``head_args`` (its keys first, ``key_count`` of them, then constant ARGV)."""
        return LaneScript(self, text, head_args, key_count)

    def close(self) -> None:
        """Close every connection this lane opened (the next call in each thread opens a fresh one)."""
        with self._lock:
            self._generation += 1
            opened = list(self._opened)
        for connection in opened:
            connection.disconnect()


class LaneScript:
    """One Lua script with its keys and constant arguments packed once: ``script(tail)`` runs it."""

    def __init__(self, lane: Lane, text: str, head_args: Sequence[bytes | str | int], key_count: int) -> None:
        self._lane = lane
        self._text = text
        sha = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
        self._count = 3 + len(head_args)
        self._head = packed_head("EVALSHA", sha, key_count, *head_args)

    def prefix(self, more: int, *constant: bytes | str | int) -> bytes:
        """The script's call packed up to ``constant`` (its first varying arguments, constant for some
        caller), with the array's header counting ``more`` arguments after them: for :func:`packed4`."""
        return b"*%d\r\n%b%b" % (self._count + len(constant) + more, self._head, packed_head(*constant))

    def __call__(self, tail: Sequence[bytes]) -> Any:
        return self.send(packed(self._count, self._head, tail))

    def send(self, command: bytes) -> Any:
        """Run the script with ``command``, a whole call of it packed (:meth:`prefix`)."""
        try:
            return self._lane.call(command)
        except self._lane._no_script:
            # A restarted or flushed server forgot the script: load it once more and call again. On the
            # lane's own connection: after a failover the client's pool may still hold a connection to
            # the old master, now a replica, which would take the script and leave the new master without.
            self._lane.call(packed(3, packed_head("SCRIPT", "LOAD", self._text), ()))
            return self._lane.call(command)


def lane_for(client: Any) -> Lane | None:
    """A lane over ``client``'s connections, or None for a client that is not one plain server's
    (a cluster client routes by key itself): its calls then take redis-py's own path."""
    import redis

    if not isinstance(client, redis.Redis):
        return None
    pool = getattr(client, "connection_pool", None)
    if pool is None or not hasattr(pool, "connection_class") or not hasattr(pool, "connection_kwargs"):
        return None
    return Lane(client)
