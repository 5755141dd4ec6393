"""How a redis connection names its keys: one place, so that a single server and a cluster agree.

On a single server (and under Sentinel) a queue ``q`` lives in ``<prefix>q``, the prefix being
``oxide:queue:`` unless the connection sets ``prefix``: the Rust original's names.

A cluster keeps each key on the node that owns its hash slot, and a script may only touch keys
of one slot. Every key of a queue (its list, ``:reserved``, ``:delayed``, ``:notify``,
``:crashes``, the operator keys) shares the queue's *base* name, and the base carries a hash tag:

- the prefix holds a tag (``prefix = "oxide:queue:{web}:"``): the base is ``<prefix>q``, and every
  queue of the connection lives on the slot of ``web``: a worker may take from any of them in one
  priority list;
- otherwise the base is ``<prefix>{q}``: each queue has a slot of its own and the queues spread
  over the cluster, but a worker's priority list must then be a single queue.

A worker whose priority list would span slots is refused before it starts (:meth:`KeySpace.check_one_slot`).
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["DEFAULT_PREFIX", "PLAIN", "KeySpace", "check_prefix", "hash_tag", "key_slot", "keyspace_of"]

DEFAULT_PREFIX = "oxide:queue:"
PREFIX_PATTERN = re.compile(r"[!-~]{1,64}")  # printable ASCII, no spaces


def hash_tag(key: str) -> str | None:
    """The part of ``key`` a cluster hashes when it is not the whole key: between the first ``{``
    and the next ``}``, when that is not empty (Redis' rule)."""
    start = key.find("{")
    if start < 0:
        return None
    end = key.find("}", start + 1)
    if end <= start + 1:
        return None
    return key[start + 1 : end]


def key_slot(key: str) -> int:
    """The cluster hash slot of ``key``: CRC16 (XMODEM, the standard library's ``crc_hqx``) of its
    hash tag, or of the whole key, mod 16384."""
    tag = hash_tag(key)
    return binascii.crc_hqx((key if tag is None else tag).encode(), 0) % 16384


def check_prefix(prefix: str, where: str) -> str:
    """``prefix`` if it can prefix keys, or a ConfigError saying what is wrong with it."""
    if not PREFIX_PATTERN.fullmatch(prefix):
        raise ConfigError(f"{where}: expected 1 to 64 printable characters without spaces, got {prefix!r}")
    if "{" in prefix and hash_tag(prefix) is None:
        raise ConfigError(
            f"{where}: {prefix!r} has a '{{' but no hash tag (a '{{', at least one character, then '}}'), "
            "so a cluster would hash each key whole; write for example 'oxide:queue:{web}:'"
        )
    if "}" in prefix.partition("{")[0]:
        raise ConfigError(f"{where}: {prefix!r} closes a hash tag it never opened")
    return prefix


@dataclass(frozen=True, slots=True)
class KeySpace:
    """The key names of one redis connection: ``prefix``, and whether it runs on a cluster."""

    prefix: str = DEFAULT_PREFIX
    cluster: bool = False

    @property
    def tag_per_queue(self) -> bool:
        """On a cluster whose prefix has no hash tag, each queue's name is its tag."""
        return self.cluster and hash_tag(self.prefix) is None

    def base(self, queue: str) -> str:
        """The name of ``queue``'s list; every other key of the queue is this and a suffix."""
        return f"{self.prefix}{{{queue}}}" if self.tag_per_queue else self.prefix + queue

    def split(self, key: str) -> tuple[str, str] | None:
        """``(queue, suffix)`` of a key named by :meth:`base` (suffix "" for the list itself, else
        without its leading ``:``), or None for a key of another shape."""
        if not key.startswith(self.prefix):
            return None
        rest = key[len(self.prefix) :]
        if self.tag_per_queue:
            if not rest.startswith("{") or "}" not in rest:
                return None
            name, _, after = rest[1:].partition("}")
            if after and not after.startswith(":"):
                return None
            return name, after[1:]
        name, _, suffix = rest.partition(":")
        return name, suffix

    def slot(self, queue: str) -> int:
        return key_slot(self.base(queue))

    def check_one_slot(self, queues: Sequence[str], connection: str) -> None:
        """A ConfigError if a worker taking from ``queues`` in one script would touch two slots."""
        if not self.cluster or len({self.slot(q) for q in queues}) <= 1:
            return
        slots = ", ".join(f"{q} -> slot {self.slot(q)}" for q in queues)
        raise ConfigError(
            f"connection {connection!r} is a Redis Cluster and its key prefix {self.prefix!r} has no hash tag, "
            f"so each queue lives on a slot of its own ({slots}); a worker takes from its whole priority list "
            "in one script, which must touch a single slot. Give the connection a prefix with a hash tag "
            '(prefix = "oxide:queue:{web}:") to keep these queues together, or run one worker per queue'
        )


PLAIN = KeySpace()  # a single server with the default prefix: the Rust original's names


def keyspace_of(prefix: str, url: str) -> KeySpace:
    """The key space of a connection with ``prefix`` at ``url``."""
    return KeySpace(prefix, cluster=url.startswith("redis+cluster://"))
