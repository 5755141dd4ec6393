"""Differential tests of ``oxide.wire`` against Rust's serde_json itself (the oracle of ``tests/oracle``).

Writing: for any JSON payload, ``Job(...).to_json()`` is byte for byte what ``serde_json::to_string``
writes for the same job, and Python refuses to write exactly what serde_json could not read back.

Reading: for any text, ``Job.from_json(text)`` succeeds exactly where serde_json reads the text, and
writes back what serde_json writes back. ``oxide.wire`` keeps the keys it does not know (so that a job
read and written again loses nothing), and so it is compared with serde_json reading the same job with
unknown keys kept (``#[serde(flatten)] extra: BTreeMap<String, Value>``); its own fields are also
compared with the SPEC's ``Job``, which skips unknown keys unread. The SPEC's struct reads more than
that in two ways, and there Python refuses, as the kept reading does:

- an unknown key whose value serde_json cannot hold (a number out of the f64 range, a lone surrogate,
  bytes that are not UTF-8, nesting past the depth limit), which is skipped by syntax alone;
- a JSON array, which serde_json's derived reader takes for the struct's fields in order.

``test_unknown_keys_are_read_in_full`` and ``test_a_job_is_an_object_never_an_array`` pin both down.

Run longer with ``pytest tests/property/test_wire_oracle.py --hypothesis-profile=deep`` (about five minutes).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import event, example, given, settings

from oxide.errors import JobDecodeError, JobEncodeError
from oxide.wire import MAX_PAYLOAD_DEPTH, Job, encode_value, format_float
from tests.property.conftest import WireOracle

I64_MIN = -(2**63)
U64_MAX = 2**64 - 1

# Each oracle test runs this many times the profile's examples: one example costs one round trip.
ORACLE = settings(max_examples=5 * (settings.default.max_examples or 100), deadline=None)


def mostly(usual: st.SearchStrategy[Any], rare: st.SearchStrategy[Any], odds: int = 12) -> st.SearchStrategy[Any]:
    """``usual``, and about once in ``odds`` draws ``rare``."""
    return st.integers(0, odds - 1).flatmap(lambda n: rare if n == 0 else usual)


# --- Python values, for writing -------------------------------------------------------------------

SPECIAL_CHARS = (
    *"\x00\x01\x08\t\n\x0b\x0c\r\x1b\x1f",  # C0 controls: serde_json escapes exactly these, '"' and '\\'
    *' "\\/\x7f',  # DEL is written raw
    *"\x80\x85\x9f\xa0\xad",  # C1 controls, NBSP, soft hyphen: raw
    *"\u2028\u2029\ufeff\ufffe\uffff\ud7ff\ue000",  # line/paragraph separators, BOM, non-characters, BMP edges
    *"\U00010000\U0001f600\U0010ffff",  # astral: one code point, two UTF-16 units
    *"é€𝄞",
)
characters = st.one_of(st.characters(codec="utf-8"), st.sampled_from(SPECIAL_CHARS))
# What a JSON string may hold unescaped: all but '"', '\\' and the C0 controls.
raw_characters = st.one_of(
    st.characters(codec="utf-8", min_codepoint=0x20, exclude_characters='"\\'),
    st.sampled_from([c for c in SPECIAL_CHARS if c >= " " and c not in '"\\']),
)
strings = st.text(characters, max_size=10)
# Code point order (Rust's BTreeMap<String>, Python's sorted) is not UTF-16 order past U+FFFF:
# "\uffff" < "\U00010000" by code point, but 0xFFFF > 0xD800 as UTF-16 units.
ORDER_KEYS = ("", "A", "a", "\x00", "\x7f", "é", "\ud7ff", "\ue000", "\uffff", "\U00010000", "\U0001f600", "\U0010ffff")
keys = st.one_of(
    strings,
    st.sampled_from(ORDER_KEYS),
    st.builds(str.__add__, st.sampled_from(ORDER_KEYS), st.sampled_from(ORDER_KEYS)),
)

INT_EDGES = (I64_MIN, I64_MIN + 1, -1, 0, 1, 2**31, 2**32, 2**53, 2**53 + 1, 2**63 - 1, 2**63, U64_MAX - 1, U64_MAX)
integers = st.one_of(
    st.integers(I64_MIN, U64_MAX),
    st.sampled_from(INT_EDGES),
    st.integers(-(2**53) - 4, 2**53 + 4),
)

# Where ryu's notation changes (1e16 vs 1e15 written out, 0.00001 vs 1e-6), and the f64 extremes.
FLOAT_MARKS = (
    *(10.0**e for e in (-8, -7, -6, -5, -4, -1, 0, 15, 16, 17, 21, 22, 23)),
    0.1,
    1.5,
    2.0**53,
    2.0**63,
    2.0**64,
    5e-324,  # smallest subnormal
    2.2250738585072009e-308,  # largest subnormal
    2.2250738585072014e-308,  # smallest normal
    1.7976931348623157e308,  # largest finite
)


def _steps(x: float, n: int) -> float:
    """``x`` moved ``n`` representable floats up (or down)."""
    for _ in range(abs(n)):
        x = math.nextafter(x, math.inf if n > 0 else -math.inf)
    return x


_magnitudes = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=0.0, max_value=2.2250738585072014e-308),  # subnormals
    st.builds(lambda digits, exponent: float(f"{digits}e{exponent}"), st.integers(1, 10**17), st.integers(-345, 291)),
    st.builds(_steps, st.sampled_from(FLOAT_MARKS), st.integers(-3, 3)),
).filter(math.isfinite)
floats = st.builds(lambda x, negative: -x if negative else x, _magnitudes, st.booleans())

scalars = st.one_of(st.none(), st.booleans(), integers, floats, strings)


def _nest(leaf: Any, arrays: list[bool]) -> Any:
    for is_array in reversed(arrays):
        leaf = [leaf] if is_array else {"k": leaf}
    return leaf


payloads = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=30,
)
# Around serde_json's depth limit: a payload may nest MAX_PAYLOAD_DEPTH (126) arrays or objects.
deep_payloads = st.builds(
    _nest, payloads, st.lists(st.booleans(), min_size=MAX_PAYLOAD_DEPTH - 6, max_size=MAX_PAYLOAD_DEPTH + 2)
)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


# --- writing --------------------------------------------------------------------------------------


FIELD_NAMES = ("event_name", "listener_type", "payload", "uuid", "attempts")
jobs = st.builds(
    Job,
    event_name=strings,
    listener_type=strings,
    payload=mostly(payloads, deep_payloads, odds=8),
    uuid=st.none() | strings,
    attempts=st.none() | st.integers(0, U64_MAX) | st.just(U64_MAX),
    extra=mostly(
        st.just({}), st.dictionaries(keys.filter(lambda k: k not in FIELD_NAMES), payloads, max_size=2), odds=4
    ),
)


def _job(payload: Any, uuid: str | None = None, attempts: int | None = None, **extra: Any) -> Job:
    return Job("e", "l", payload, uuid, attempts, extra)


@ORACLE
@given(job=jobs, ensure_ascii=st.booleans())
@example(job=_job([1e16, 1.5e-7, 1e-5, 1e-7, 5e-324, -0.0, 2**64 - 1, -(2**63)]), ensure_ascii=True)
@example(job=_job({"\uffff": 1, "\U00010000": 2, "\u2028": "\u2028\x7f\x1f"}, "u", 0), ensure_ascii=True)
@example(job=_job(_nest(0, [True] * MAX_PAYLOAD_DEPTH)), ensure_ascii=False)
@example(job=_job(_nest(0, [True] * (MAX_PAYLOAD_DEPTH + 1))), ensure_ascii=False)
# An unknown key sits beside payload, at the same depth: it may nest as deep (it was held to one level less).
@example(job=_job(0, x=_nest(0, [False] * MAX_PAYLOAD_DEPTH)), ensure_ascii=False)
def test_to_json_writes_what_serde_json_writes(wire_oracle: WireOracle, job: Job, ensure_ascii: bool) -> None:
    # serde_json is handed the job as Python's json module writes it: every float as repr(), which
    # serde_json (float_roundtrip) reads back as the same float, and every integer exactly.
    fields: dict[str, Any] = {"event_name": job.event_name, "listener_type": job.listener_type, "payload": job.payload}
    if job.uuid is not None:
        fields["uuid"] = job.uuid
    if job.attempts is not None:
        fields["attempts"] = job.attempts
    fields.update(job.extra)
    text = json.dumps(fields, ensure_ascii=ensure_ascii, allow_nan=False)
    kept, plain = wire_oracle.keep(text), wire_oracle.job(text)
    too_deep = max(map(_depth, fields.values())) > MAX_PAYLOAD_DEPTH
    event(f"nested {'past' if too_deep else 'within'} the limit")

    refused: JobEncodeError | None = None
    try:
        written = job.to_json()
    except JobEncodeError as exc:
        refused = exc
    if refused is not None:
        assert not kept.ok, f"Python refuses to write ({refused}) what serde_json writes as {kept.text[:300]}"
        return
    assert kept.ok, f"Python writes {written[:300]}, which serde_json cannot read: {kept.text}"
    assert written == kept.text
    assert Job.from_json(written) == job  # and it reads back as itself
    # The SPEC's struct: the same bytes for the job's own fields, unknown keys left out.
    assert plain.ok, plain.text
    assert job.replace(extra={}).to_json() == plain.text


@settings(ORACLE, max_examples=4 * ORACLE.max_examples)
@given(floats)
@example(1e16)
@example(9999999999999998.0)
@example(1e-5)
@example(1e-7)
@example(1.5e-7)
@example(5e-324)
@example(-0.0)
def test_format_float_writes_what_ryu_writes(wire_oracle: WireOracle, x: float) -> None:
    reply = wire_oracle.value(repr(x))
    assert reply.ok, reply.text
    assert format_float(x) == reply.text


@ORACLE
@given(mostly(payloads, deep_payloads, odds=8))
def test_encode_value_writes_what_serde_json_writes(wire_oracle: WireOracle, value: Any) -> None:
    # A bare value may nest one level deeper than a payload in serde_json, so compare within the limit.
    if _depth(value) > MAX_PAYLOAD_DEPTH:
        with pytest.raises(JobEncodeError):
            encode_value(value)
        return
    reply = wire_oracle.value(json.dumps(value, allow_nan=False))
    assert reply.ok, reply.text
    assert encode_value(value) == reply.text


# --- JSON texts, for reading ----------------------------------------------------------------------

_digits = st.text(st.sampled_from("0123456789"), min_size=1, max_size=22)
_int_parts = st.one_of(st.just("0"), st.builds(str.__add__, st.sampled_from("123456789"), _digits | st.just("")))
_fractions = st.one_of(st.just(""), _digits.map(".{}".format))
_exponents = st.one_of(
    st.just(""),
    st.builds(
        "{}{}{}".format,
        st.sampled_from("eE"),
        st.sampled_from(["", "+", "-"]),
        st.integers(0, 300).map(str) | st.sampled_from(["00", "0308", "308", "324", "99999999999999999999"]),
    ),
)
LONG_INT = "1" + "0" * 4300  # past CPython's default limit on int() of a digit string
NUMBER_EDGES = (  # all read by serde_json
    "-0",
    "-0.0",
    "0e0",
    "-0E-0",
    "1e-400",
    "0e99999999999999999999",
    "9007199254740993",  # 2**53 + 1: a tie, rounds to even
    "9007199254740993.0000000000000001",  # just past the tie: rounds up
    "2.4703282292062327e-324",  # just under half the smallest subnormal: 0.0
    "2.4703282292062328e-324",  # just over: 5e-324
    "1.7976931348623158e308",  # rounds down to the largest finite
    *(str(n) for edge in (I64_MIN, 2**63 - 1, U64_MAX) for n in (edge - 1, edge, edge + 1)),
    "1" + "0" * 308,
    "0." + "0" * 330 + "1",
)
BAD_NUMBERS = (  # refused: out of the f64 range, or not JSON
    "1e400",
    "-1e400",
    "1.7976931348623159e308",  # rounds up to infinity
    "1" + "0" * 309,
    LONG_INT,
    "-" + LONG_INT,
    *("01", "-01", "1.", ".5", "+1", "-", "1e", "1e+", "1.e5", "0x10", "NaN", "-NaN", "Infinity", "-Infinity"),
)
BAD_WHITESPACE = ("\x0b", "\x0c", "\xa0", "\u2028", "\u3000", "\ufeff", "\x00")  # not JSON whitespace
BAD_STRING_PIECES = (
    *("\\ud800", "\\uDFFF", "\\ud83d\\u0041", "\\ud83d\\ud83d", "\\ude00\\ud83d", "\\ud83d"),  # lone surrogates
    *("\x00", "\x1f", "\n", "\\x41", "\\U0041", "\\u12", "\\u12G4", "\\a", "\\'", "\\0"),  # not JSON
)
BAD_VALUES = ("nul", "True", "NULL", "undefined", "'a'", "[1,]", '{"a":1,}', '{"a"}', "{1:2}", "[", "}")
_SIMPLE_ESCAPES = ('\\"', "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t")


def _u_escape(unit: int, upper: bool) -> str:
    return f"\\u{unit:04X}" if upper else f"\\u{unit:04x}"


def _pair_escape(code_point: int, upper: bool) -> str:
    high, low = divmod(code_point - 0x10000, 0x400)
    return _u_escape(0xD800 + high, upper) + _u_escape(0xDC00 + low, upper)


def _spelled(name: str, escaped: list[bool]) -> str:
    """``name`` as a JSON string with the marked characters written as \\u escapes."""
    flags = escaped + [False] * len(name)
    return '"' + "".join(f"\\u{ord(c):04x}" if flag else c for c, flag in zip(name, flags, strict=False)) + '"'


def name_texts(name: str) -> st.SearchStrategy[str]:
    """The key ``name``, mostly written plainly, sometimes with escapes that spell the same key."""
    return mostly(
        st.just(json.dumps(name)), st.builds(_spelled, st.just(name), st.lists(st.booleans(), min_size=1)), odds=6
    )


def _array_text(items: list[tuple[str, str, str]]) -> str:
    return "[" + ",".join(before + item + after for before, item, after in items) + "]"


def _object_text(members: list[tuple[str, str, str, str, str]]) -> str:
    return "{" + ",".join(f"{w1}{key}{w2}:{w3}{value}" for w1, key, w2, w3, value in members) + "}"


def _nest_text(inner: str, arrays: list[bool]) -> str:
    opening = "".join("[" if is_array else '{"k":' for is_array in arrays)
    return opening + inner + "".join("]" if is_array else "}" for is_array in reversed(arrays))


@dataclass(frozen=True)
class Grammar:
    """Strategies for pieces of JSON text. A clean grammar writes only what serde_json reads (but for
    nesting past its limit); a dirty one now and then writes what it refuses, or what is not JSON."""

    whitespace: st.SearchStrategy[str]
    numbers: st.SearchStrategy[str]
    strings: st.SearchStrategy[str]
    values: st.SearchStrategy[str]
    fields: dict[str, st.SearchStrategy[str]]


def grammar(dirty: bool) -> Grammar:
    def sometimes(usual: st.SearchStrategy[Any], *bad: str) -> st.SearchStrategy[Any]:
        return mostly(usual, st.sampled_from(bad), odds=30) if dirty else usual

    whitespace = sometimes(st.text(st.sampled_from(" \t\n\r"), max_size=2), *BAD_WHITESPACE)
    numbers = sometimes(
        st.one_of(
            st.builds("{}{}{}{}".format, st.sampled_from(["", "-"]), _int_parts, _fractions, _exponents),
            st.sampled_from(NUMBER_EDGES),
            floats.map(repr),
        ),
        *BAD_NUMBERS,
    )
    pieces = sometimes(
        st.one_of(
            raw_characters,  # written raw
            st.sampled_from(_SIMPLE_ESCAPES),
            st.builds(_u_escape, st.integers(0, 0xD7FF) | st.integers(0xE000, 0xFFFF), st.booleans()),
            st.builds(_pair_escape, st.integers(0x10000, 0x10FFFF), st.booleans()),
        ),
        *BAD_STRING_PIECES,
    )
    strings = st.lists(pieces, max_size=6).map(lambda pieces: '"' + "".join(pieces) + '"')
    keys = st.one_of(strings, st.sampled_from(['"a"', '"b"', '"\\u0061"', '"\\uffff"', '"\\ud800\\udc00"']))
    scalars = sometimes(st.one_of(st.sampled_from(["null", "true", "false"]), numbers, strings), *BAD_VALUES)
    values = st.recursive(
        scalars,
        lambda children: st.one_of(
            st.builds(_array_text, st.lists(st.tuples(whitespace, children, whitespace), max_size=4)),
            st.builds(
                _object_text, st.lists(st.tuples(whitespace, keys, whitespace, whitespace, children), max_size=4)
            ),
        ),
        max_leaves=20,
    )
    # Around serde_json's depth limit: a job's values may nest MAX_PAYLOAD_DEPTH arrays or objects.
    deep = st.builds(
        _nest_text, values, st.lists(st.booleans(), min_size=MAX_PAYLOAD_DEPTH - 4, max_size=MAX_PAYLOAD_DEPTH + 2)
    )
    values = mostly(values, deep, odds=15)
    fields = {
        "event_name": strings,
        "listener_type": strings,
        "payload": values,
        "uuid": strings | st.just("null"),
        "attempts": st.integers(0, U64_MAX).map(str) | st.sampled_from(["null", "0", "18446744073709551615"]),
    }
    if dirty:  # of the wrong type
        fields = {name: mostly(usual, values, odds=10) for name, usual in fields.items()}
        fields["attempts"] = mostly(
            fields["attempts"], numbers | st.sampled_from(["-1", "1.0", "1e2", "-0", '"1"', "true"]), odds=6
        )
    return Grammar(whitespace, numbers, strings, values, fields)


CLEAN, DIRTY = grammar(dirty=False), grammar(dirty=True)
UNKNOWN_NAMES = st.sampled_from(["id", "queue", "event_names", "Payload", "uuid ", "payload\u0000"]) | strings.filter(
    lambda s: s not in CLEAN.fields
)


@st.composite
def job_texts(draw: st.DrawFn, g: Grammar) -> str:
    """A JSON object that is mostly a job: its fields in any order, spelled in any way, sometimes
    missing, twice, of the wrong type (in a dirty grammar), or beside unknown keys."""
    members: list[tuple[str, str]] = []
    for name, values in g.fields.items():
        required = name in ("event_name", "listener_type", "payload")
        if draw(st.integers(0, 29)) != 0 if required else draw(st.booleans()):
            members.append((draw(name_texts(name)), draw(values)))
    for _ in range(draw(st.integers(0, 2))):
        members.append((json.dumps(draw(UNKNOWN_NAMES)), draw(g.values)))
    if members and draw(st.integers(0, 14)) == 0:  # a field twice, perhaps spelled differently
        name = draw(st.sampled_from(list(g.fields)))
        members.append((draw(name_texts(name)), draw(g.fields[name])))
    members = draw(st.permutations(members))
    spaced = [(draw(g.whitespace), key, draw(g.whitespace), draw(g.whitespace), value) for key, value in members]
    return draw(g.whitespace) + _object_text(spaced) + draw(g.whitespace)


def _mutate(text: str, position: int, operation: str, inserted: str) -> str:
    position = min(position, len(text))
    if operation == "delete":
        return text[:position] + text[position + 1 :]
    if operation == "insert":
        return text[:position] + inserted + text[position:]
    return text[:position]  # truncate


mutations = st.tuples(
    st.integers(0, 10_000), st.sampled_from(["delete", "insert", "truncate"]), st.sampled_from(list('{}[],:"\\ 0-.eu'))
)
INVALID_UTF8 = (b"\xff", b"\x80", b"\xc3", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80")


@st.composite
def wire_bytes(draw: st.DrawFn) -> bytes:
    """What a consumer may find on a queue: mostly a job, sometimes with a flaw, damaged, or not UTF-8."""
    g = DIRTY if draw(st.integers(0, 4)) == 0 else CLEAN
    text = draw(mostly(job_texts(g), g.values, odds=15))
    if draw(st.integers(0, 9)) == 0:
        text = _mutate(text, *draw(mutations))
    data = text.encode("utf-8")
    if draw(st.integers(0, 19)) == 0:
        position = draw(st.integers(0, len(data)))
        data = data[:position] + draw(st.sampled_from(INVALID_UTF8)) + data[position:]
    return data


def _read(data: str | bytes) -> Job | JobDecodeError:
    try:
        return Job.from_json(data)
    except JobDecodeError as exc:
        return exc


_JOB = '{"event_name":"e","listener_type":"l","payload":'


@ORACLE
@given(wire_bytes())
@example(b'{"event_name":"a","listener_type":"l","payload":{"z":1e16,"a":-0,"b":18446744073709551616,"c":1.5e-7}}')
@example(b'{"payload":[0.00001,1E+2,"\\u2028\\ud83d\\ude00\\u007f"],"listener_type":"l","event_name":"a","id":7}')
# Found by this test, fixed in oxide.wire:
# - an integer of more than 4300 digits raised a bare ValueError (from int()), not JobDecodeError;
@example((_JOB + LONG_INT + "}").encode())
# - a field named twice went unseen when one spelling used escapes, or when the field was optional;
@example(b'{"\\u0065vent_name":"a","listener_type":"l","payload":[],"event_name":"b"}')
@example((_JOB + '0,"uuid":"a","uuid":"b"}').encode())
# - an unknown key nesting as deep as payload may was read but could not be written back, and one
#   nesting deeper was read;
@example((_JOB + '0,"x":' + _nest_text("0", [True] * MAX_PAYLOAD_DEPTH) + "}").encode())
@example((_JOB + '0,"x":' + _nest_text("0", [True] * (MAX_PAYLOAD_DEPTH + 1)) + "}").encode())
# - a lone surrogate or too deep a value was let through when a repeated key replaced it.
@example((_JOB + '{"a":"\\ud800","a":1}}').encode())
@example((_JOB + '{"a":' + _nest_text("0", [True] * MAX_PAYLOAD_DEPTH) + ',"a":1}}').encode())
@example((_JOB + '0,"x":' + _nest_text("0", [True] * (MAX_PAYLOAD_DEPTH + 1)) + ',"x":0}').encode())
def test_from_json_reads_what_serde_json_reads(wire_oracle: WireOracle, data: bytes) -> None:
    plain = wire_oracle.job(data)
    kept = wire_oracle.keep(data)
    as_bytes = _read(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        as_text = as_bytes
    else:
        as_text = _read(text)
        assert repr(as_text) == repr(as_bytes), "str and bytes of the same text read differently"

    if isinstance(as_bytes, JobDecodeError):
        assert not kept.ok, f"Python refuses ({as_bytes}); serde_json reads {kept.text[:300]}"
        event("refused" if not plain.ok else "refused; the SPEC's struct reads it (an array, or a bad unknown key)")
        return
    assert kept.ok, f"serde_json refuses ({kept.text}); Python reads {as_bytes!r:.300}"
    event("read")
    assert as_bytes.to_json() == kept.text
    # What is read keeping unknown keys is read skipping them too, and the SPEC's fields are the same.
    assert plain.ok, plain.text
    spec_job = Job(as_bytes.event_name, as_bytes.listener_type, as_bytes.payload, as_bytes.uuid, as_bytes.attempts)
    assert spec_job.to_json() == plain.text


# --- where serde_json's two readings part, and where the SPEC parts from serde_json ------------------


@pytest.mark.parametrize(
    "data",
    [
        (_JOB + '1,"x":1e400}').encode(),
        (_JOB + '1,"x":' + LONG_INT + "}").encode(),
        (_JOB + '1,"x":"\\ud800"}').encode(),
        (_JOB + '1,"x":' + _nest_text("0", [True] * (MAX_PAYLOAD_DEPTH + 1)) + "}").encode(),
        (_JOB + '1,"x":"').encode() + b"\xff" + b'"}',
    ],
    ids=["out-of-range", "long-integer", "lone-surrogate", "too-deep", "not-utf8"],
)
def test_unknown_keys_are_read_in_full(wire_oracle: WireOracle, data: bytes) -> None:
    """An unknown key is kept, so its value must be one serde_json can hold; the SPEC's struct,
    which skips it unread, takes the job."""
    assert wire_oracle.job(data).ok
    assert not wire_oracle.keep(data).ok
    with pytest.raises(JobDecodeError):
        Job.from_json(data)


@pytest.mark.parametrize("text", ['["e","l",{"a":1}]', '["e","l",1,"uuid",3]'])
def test_a_job_is_an_object_never_an_array(wire_oracle: WireOracle, text: str) -> None:
    """serde_json's derived reader takes a struct from a JSON array too; a job on the wire is an object."""
    assert wire_oracle.job(text).ok
    with pytest.raises(JobDecodeError, match="JSON object"):
        Job.from_json(text)


def test_the_oracle_is_serde_json_with_exact_floats(wire_oracle: WireOracle) -> None:
    """The oracle itself: serde_json's own notation, and float_roundtrip's exact reading of a hard case."""
    assert wire_oracle.value("[1e16,1.5e-7,0.00001,1,-0,18446744073709551616]").text == (
        "[1e16,1.5e-7,0.00001,1,-0.0,1.8446744073709552e19]"
    )
    assert not wire_oracle.value("1E400").ok
    # A float's own shortest text; serde_json without float_roundtrip reads it one unit off
    # (as 4.2986039630175854e-111), as it does nearly a third of random floats' shortest texts.
    assert wire_oracle.value("4.298603963017585e-111").text == "4.298603963017585e-111"
