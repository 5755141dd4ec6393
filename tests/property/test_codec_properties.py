"""Properties of the wire codec: round trip, one canonical form, exact shortest floats, refusals."""

from __future__ import annotations

import enum
import json
import math
import re
import struct
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from oxide.config import QUEUE_NAME, interpolate
from oxide.drivers import check_queue_name
from oxide.errors import JobDecodeError, JobEncodeError, QueueNameError
from oxide.wire import MAX_PAYLOAD_DEPTH, Job, encode_value, format_float
from tests.jsonvalues import (
    I64_MIN,
    U64_MAX,
    finite_floats,
    hand_written,
    jobs,
    json_values,
    same_job,
    same_json,
    texts,
)

# -- round trip and the canonical form -------------------------------------------------------------


@given(jobs())
def test_round_trip_is_exact(job: Job) -> None:
    text = job.to_json()
    back = Job.from_json(text)
    assert back == job
    assert same_job(back, job)  # types and float bits too, which == does not see
    assert same_job(Job.from_json(text.encode("utf-8")), job)


@given(jobs())
def test_canonical_form_is_a_fixed_point(job: Job) -> None:
    text = job.to_json()
    assert Job.from_json(text).to_json() == text


@given(jobs(with_optional=False))
def test_another_json_reader_sees_the_same_values(job: Job) -> None:
    # Python's own json module as an independent reader: same keys, in the wire's order, same values.
    parsed = json.loads(job.to_json())
    assert list(parsed) == ["event_name", "listener_type", "payload"]
    assert same_json(parsed["payload"], job.payload)


@given(st.data())
def test_every_spelling_of_a_job_has_one_canonical_form(data: st.DataObject) -> None:
    job = data.draw(jobs())
    spelled = data.draw(hand_written(job))
    assert Job.from_json(spelled).to_json() == job.to_json()


def _walk(value: Any) -> Any:
    """Yield every object in a JSON value (to check key order at every level)."""
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


@given(json_values())
def test_canonical_form_is_compact_with_sorted_keys(value: Any) -> None:
    text = encode_value(value)
    ordered = json.loads(text, object_pairs_hook=list)
    for pairs in _walk_pairs(ordered):
        keys = [k for k, _ in pairs]
        assert keys == sorted(keys)
    # Compact: re-encoding with Python's compact separators changes no character outside floats.
    stripped = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)  # drop string contents
    assert not re.search(r"\s", stripped)


def _walk_pairs(value: Any) -> Any:
    if isinstance(value, list) and value and all(isinstance(p, tuple) for p in value):
        yield value
        for _, item in value:
            yield from _walk_pairs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk_pairs(item)


# -- floats ---------------------------------------------------------------------------------------

FLOAT_FORM = re.compile(r"-?(?:\d+\.\d+|[1-9](?:\.\d*[1-9])?e-?[1-9]\d*)")


def _bits(x: float) -> bytes:
    return struct.pack("<d", x)


def _significant_digits(text: str) -> int:
    mantissa = text.lstrip("-").split("e")[0].replace(".", "").lstrip("0")
    return len(mantissa.rstrip("0")) or 1


def _round_to(x: float, digits: int, rounding: str) -> Decimal:
    return Context(prec=digits, rounding=rounding).plus(Decimal(x))


@given(finite_floats)
def test_float_text_reads_back_as_the_same_float(x: float) -> None:
    text = format_float(x)
    assert _bits(float(text)) == _bits(x)
    assert same_json(Job.from_json(f'{{"event_name":"e","listener_type":"l","payload":{text}}}').payload, x)


@given(finite_floats)
def test_float_text_has_serde_json_layout(x: float) -> None:
    text = format_float(x)
    assert FLOAT_FORM.fullmatch(text), text
    if x == 0:
        assert text in ("0.0", "-0.0")
        return
    # ryu writes positionally exactly when the decimal exponent kk (10**(kk-1) <= |v| < 10**kk) is in (-5, 16].
    kk = Decimal(text).adjusted() + 1
    assert ("e" not in text) == (-5 < kk <= 16), text
    if "e" not in text:
        integer, fraction = text.lstrip("-").split(".")
        assert fraction == "0" or not fraction.endswith("0"), text
        assert integer == "0" or not integer.startswith("0"), text


@given(finite_floats)
def test_float_text_is_the_shortest_and_the_closest(x: float) -> None:
    assume(x != 0)
    text = format_float(x)
    n = _significant_digits(text)
    # Shortest: no decimal with n-1 significant digits reads back as x. The decimals that read back
    # as x form an interval around x, so checking the nearest one on each side is enough.
    if n > 1:
        for rounding in (ROUND_FLOOR, ROUND_CEILING):
            assert float(_round_to(x, n - 1, rounding)) != x, (text, rounding)
    # Closest: among the n-digit decimals around x that read back as x, ours is the nearest to x.
    ours = abs(Decimal(text) - Decimal(x))
    for rounding in (ROUND_FLOOR, ROUND_CEILING):
        candidate = _round_to(x, n, rounding)
        if float(candidate) == x:
            assert ours <= abs(candidate - Decimal(x)), (text, candidate)


# -- refusals -------------------------------------------------------------------------------------


class Colour(enum.IntEnum):
    RED = 1


class Size(enum.StrEnum):
    SMALL = "s"


lone_surrogates = st.characters(categories=("Cs",))
strings_with_a_lone_surrogate = st.builds(lambda a, s, b: a + s + b, texts, lone_surrogates, texts)

# Values that the wire cannot carry, refused where they stand.
unrepresentable = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.integers(min_value=U64_MAX + 1),
    st.integers(max_value=I64_MIN - 1),
    strings_with_a_lone_surrogate,
    st.tuples(st.integers()),
    st.sets(st.integers(), max_size=2),
    st.binary(max_size=4),
    st.sampled_from([Colour.RED, Size.SMALL, Decimal("1.5"), 1j, object(), b"", bytearray()]),
)
# Objects whose keys are wrong: the error names the object itself.
bad_objects = st.one_of(
    st.dictionaries(st.integers() | st.booleans() | st.none() | st.tuples(st.integers()), st.none(), min_size=1),
    st.builds(lambda k: {k: None}, strings_with_a_lone_surrogate),
)

# One step from a container down to its child: ("list", index, siblings) or ("dict", key, siblings).
steps = st.one_of(
    st.tuples(st.just("list"), st.integers(0, 3), st.lists(json_values(3), max_size=3)),
    st.tuples(st.just("dict"), texts, st.dictionaries(texts, json_values(3), max_size=3)),
)


def _bury(bad: Any, path_steps: list[tuple[str, Any, Any]]) -> tuple[Any, str]:
    """Put ``bad`` at the end of ``path_steps``; return the payload and the path the error must name."""
    value = bad
    for kind, where, siblings in reversed(path_steps):
        if kind == "list":
            items = list(siblings)
            items.insert(min(where, len(items)), value)
            value = items
        else:
            value = {**siblings, where: value}
    path = "payload"
    for kind, where, siblings in path_steps:
        path += f"[{min(where, len(siblings))}]" if kind == "list" else f"[{where!r}]"
    return value, path


@given(unrepresentable | bad_objects, st.lists(steps, max_size=5))
def test_every_unrepresentable_value_is_refused_naming_its_path(bad: Any, path_steps: list[Any]) -> None:
    payload, path = _bury(bad, path_steps)
    with pytest.raises(JobEncodeError, match="^" + re.escape(path) + ": "):
        Job("e", "l", payload).to_json()


@given(st.integers(0, 5), st.lists(steps, min_size=1, max_size=3))
def test_nesting_beyond_the_limit_is_refused_wherever_it_is(extra: int, path_steps: list[Any]) -> None:
    deep: Any = 0
    for _ in range(MAX_PAYLOAD_DEPTH + 1 + extra - len(path_steps)):
        deep = [deep]
    payload, _path = _bury(deep, path_steps)
    with pytest.raises(JobEncodeError, match=f"nested deeper than {MAX_PAYLOAD_DEPTH} levels"):
        Job("e", "l", payload).to_json()
    with pytest.raises(JobDecodeError, match=f"nested deeper than {MAX_PAYLOAD_DEPTH} levels"):
        Job.from_dict({"event_name": "e", "listener_type": "l", "payload": payload})


@given(st.lists(texts, max_size=4), st.integers(0, 4), texts, st.integers(0xD800, 0xDFFF), texts)
def test_escaped_lone_surrogates_in_input_are_refused(
    items: list[str], at: int, before: str, code: int, after: str
) -> None:
    parts = [json.dumps(t) for t in items]
    lone = json.dumps(before)[:-1] + f"\\u{code:04x}" + json.dumps(after)[1:]
    parts.insert(min(at, len(parts)), lone)
    text = '{"event_name":"e","listener_type":"l","payload":[' + ",".join(parts) + "]}"
    with pytest.raises(JobDecodeError, match="lone surrogate"):
        Job.from_json(text)


@given(st.integers(min_value=U64_MAX + 1, max_value=10**400) | st.integers(min_value=-(10**400), max_value=I64_MIN - 1))
def test_integers_beyond_the_wire_range_read_as_floats_or_are_refused(n: int) -> None:
    text = f'{{"event_name":"e","listener_type":"l","payload":{n}}}'
    if math.isinf(float(Decimal(n))):
        with pytest.raises(JobDecodeError, match="out of range"):
            Job.from_json(text)
    else:
        assert same_json(Job.from_json(text).payload, float(Decimal(n)))


# -- names and interpolation ------------------------------------------------------------------------


@given(st.text(max_size=140) | st.text(st.sampled_from("aZ09_.-:/ é"), max_size=140))
def test_queue_name_check_is_exactly_the_documented_pattern(name: str) -> None:
    valid = re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", name, flags=re.ASCII) is not None
    assert (QUEUE_NAME.fullmatch(name) is not None) == valid
    if valid:
        assert check_queue_name(name) == name
    else:
        with pytest.raises(QueueNameError):
            check_queue_name(name)


var_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
literals = st.text(st.characters(exclude_characters="$", codec="utf-8"), max_size=8)
defaults = st.text(st.characters(exclude_characters="${}", codec="utf-8"), max_size=8)


@given(
    st.dictionaries(var_names, st.text(max_size=5), max_size=4),
    st.lists(st.tuples(literals, var_names, st.none() | defaults), max_size=4),
    literals,
)
def test_interpolation_follows_posix_defaults(
    env: dict[str, str], pieces: list[tuple[str, str, str | None]], tail: str
) -> None:
    template = expected = ""
    for literal, name, default in pieces:
        template += literal + ("${" + name + "}" if default is None else "${" + name + ":-" + default + "}")
        value = env.get(name, "")
        expected += literal + (value if default is None or value else default)
    template += tail
    expected += tail
    assert interpolate(template, env, "where") == expected
