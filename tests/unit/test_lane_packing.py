"""The lane's packing (oxide/drivers/lane.py) makes the same bytes as redis-py's own packer, for
arguments of every length, on both sides of the bulk-string headers made ahead (1,024 bytes)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from redis.connection import PythonRespSerializer

from oxide.drivers.lane import packed, packed4, packed_head

SIZES = [0, 1, 9, 10, 1022, 1023, 1024, 1025, 70_000]


def redis_py(*args: bytes | str | int) -> bytes:
    """The command as redis-py's pure-Python serializer packs it (the reference)."""
    return b"".join(
        PythonRespSerializer(6000, lambda value: value if isinstance(value, bytes) else str(value).encode()).pack(*args)
    )


def test_each_length_around_the_headers_made_ahead_packs_as_redis_py_does() -> None:
    head = packed_head("EVALSHA", "f" * 40, 2, "k1", "k2")
    for size in SIZES:
        arg = b"x" * size
        assert packed(5, head, [arg, b"7"]) == redis_py("EVALSHA", "f" * 40, 2, "k1", "k2", arg, b"7")
        assert packed(5, head, ()) == redis_py("EVALSHA", "f" * 40, 2, "k1", "k2")


def test_a_prefix_and_four_arguments_pack_as_the_whole_command() -> None:
    from oxide.drivers.lane import LaneScript

    script = LaneScript.__new__(LaneScript)  # packing only: no lane, no connection
    script._count = 3 + 2
    script._head = packed_head("EVALSHA", "a" * 40, 2, "k1", "k2")
    busy = script.prefix(4, "1")
    for size in SIZES:
        member = b"t.1|" + b"{" * size
        expected = redis_py("EVALSHA", "a" * 40, 2, "k1", "k2", "1", b"1733612345678", b"w.5", b"-3", member)
        assert packed4(busy, b"1733612345678", b"w.5", b"-3", member) == expected


@given(st.lists(st.binary(max_size=1500), max_size=6))
def test_any_arguments_pack_as_redis_py_does(args: list[bytes]) -> None:
    assert packed(1, packed_head("RPUSH"), args) == redis_py("RPUSH", *args)
