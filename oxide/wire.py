"""The wire format: one module owns how a job becomes bytes and back.

A job is one JSON object whose encoding is byte-identical to Rust's
``serde_json::to_string`` of ``Job { event_name, listener_type, payload }``:
compact, UTF-8 written raw, object keys inside ``payload`` sorted, floats in
the shortest round-trip form that serde_json (through ryu) writes. Optional
keys (``uuid``, ``attempts``, and keys written by other producers that we do
not know) follow ``payload``; unknown keys are kept so that a job read from
the wire and written again loses nothing.

Decoding follows serde_json's reading of the same text: integers outside
[-2**63, 2**64-1] and the literal ``-0`` become floats, numbers out of the
float range and lone surrogates are refused, nesting is limited to the depth
serde_json accepts.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import JobDecodeError, JobEncodeError

__all__ = ["Job", "encode_value", "format_float"]

I64_MIN = -(2**63)
U64_MAX = 2**64 - 1
# serde_json refuses input nested 128 deep (the job object counts as one level),
# so a payload may hold at most 126 nested arrays/objects below the job.
MAX_PAYLOAD_DEPTH = 126
_MAX_INT_CHARS = 20  # len(str(I64_MIN)) == len(str(U64_MAX))

_REQUIRED = ("event_name", "listener_type", "payload")
_KNOWN_OPTIONAL = ("uuid", "attempts")
_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
# An escape that may spell a letter of a field's name or its "_" (\u0065vent_name is event_name).
_ESCAPED_NAME_CHAR = re.compile(r"\\u00(?:5[fF]|[67][0-9a-fA-F])")
# The escapes of a JSON text in order, a surrogate pair taken as one: "lone" is a surrogate without its partner.
_ESCAPE = re.compile(
    r"\\(?:u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|(?P<lone>u[dD][89a-fA-F][0-9a-fA-F]{2})|.)",
    re.DOTALL,
)
_STRING_LITERAL = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
# serde_json escapes exactly '"', '\\' and the C0 controls; everything else is raw UTF-8.
_dump_str = json.JSONEncoder(ensure_ascii=False).encode


def format_float(value: float) -> str:
    """Write a finite float exactly as serde_json (ryu) does: ``1e16``, ``1.5e-7``, ``0.00001``, ``1.0``."""
    if value == 0.0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign = "-" if value < 0 else ""
    text = repr(abs(value))  # shortest round-trip digits, as ryu computes them
    mantissa, _, exp_text = text.partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    all_digits = int_part + frac_part
    digits = all_digits.lstrip("0")
    leading_zeros = len(all_digits) - len(digits)
    digits = digits.rstrip("0")
    # value == 0.DIGITS * 10**point
    point = len(int_part) + int(exp_text or 0) - leading_zeros
    length = len(digits)
    if point - length >= 0 and point <= 16:
        return f"{sign}{digits}{'0' * (point - length)}.0"
    if 0 < point <= 16:
        return f"{sign}{digits[:point]}.{digits[point:]}"
    if -5 < point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if length == 1:
        return f"{sign}{digits}e{point - 1}"
    return f"{sign}{digits[0]}.{digits[1:]}e{point - 1}"


def _encode(value: object, path: str, depth: int, out: list[str]) -> None:
    # Exact type checks: a subclass (bool aside, an IntEnum, a StrEnum) would not read back as itself.
    if type(value) is str:
        if _SURROGATE.search(value):
            raise JobEncodeError(f"{path}: string holds a lone surrogate, which is not valid Unicode")
        out.append(_dump_str(value))
    elif value is None:
        out.append("null")
    elif type(value) is bool:
        out.append("true" if value else "false")
    elif type(value) is int:
        if not I64_MIN <= value <= U64_MAX:
            raise JobEncodeError(f"{path}: integer {value} is outside [-2**63, 2**64-1]")
        out.append(int.__repr__(value))
    elif type(value) is float:
        if not math.isfinite(value):
            raise JobEncodeError(f"{path}: {value!r} cannot be written as JSON (NaN and infinities are refused)")
        out.append(format_float(value))
    elif type(value) is dict:
        if depth >= MAX_PAYLOAD_DEPTH:
            raise JobEncodeError(f"{path}: nested deeper than {MAX_PAYLOAD_DEPTH} levels")
        for key in value:
            if type(key) is not str:
                raise JobEncodeError(f"{path}: object key {key!r} is a {type(key).__name__}; JSON keys are strings")
            if _SURROGATE.search(key):
                raise JobEncodeError(f"{path}: object key {key!r} holds a lone surrogate")
        out.append("{")
        for index, key in enumerate(sorted(value)):
            if index:
                out.append(",")
            out.append(_dump_str(key))
            out.append(":")
            _encode(value[key], f"{path}[{key!r}]", depth + 1, out)
        out.append("}")
    elif type(value) is list:
        if depth >= MAX_PAYLOAD_DEPTH:
            raise JobEncodeError(f"{path}: nested deeper than {MAX_PAYLOAD_DEPTH} levels")
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, f"{path}[{index}]", depth + 1, out)
        out.append("]")
    else:
        kind = type(value)
        raise JobEncodeError(
            f"{path}: a {kind.__module__}.{kind.__qualname__} is not a JSON value "
            "(use dict with str keys, list, str, int, float, bool or None)"
        )


def encode_value(value: object, path: str = "payload") -> str:
    """Encode any JSON value in serde_json's canonical form, refusing what it cannot carry."""
    out: list[str] = []
    _encode(value, path, 0, out)
    return "".join(out)


def _parse_int(text: str) -> int | float:
    # An integer written in more characters than I64_MIN or U64_MAX (JSON has no leading zeros) is
    # out of their range; it is not handed to int(), which refuses past 4300 digits with a bare ValueError.
    if len(text) <= _MAX_INT_CHARS:
        value = int(text)
        if I64_MIN <= value <= U64_MAX and text != "-0":
            return value
    # serde_json reads integers it cannot hold, and -0, as floats.
    return _parse_float(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise JobDecodeError(f"number {text[:40]} is out of range")
    return value


def _parse_constant(text: str) -> float:
    raise JobDecodeError(f"{text} is not valid JSON")


def _find_surrogate(value: object, path: str) -> str | None:
    if isinstance(value, str):
        return path if _SURROGATE.search(value) else None
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _find_surrogate(item, f"{path}[{index}]")
            if found:
                return found
    elif isinstance(value, dict):
        for key, item in value.items():
            if _SURROGATE.search(key):
                return f"{path} (a key)"
            found = _find_surrogate(item, f"{path}[{key!r}]")
            if found:
                return found
    return None


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _lone_surrogate_escape(text: str) -> str | None:
    """The first ``\\uD800``-``\\uDFFF`` escape of a valid JSON text that is not half of a pair."""
    for match in _ESCAPE.finditer(text):
        if match["lone"]:
            return f"\\{match['lone']}"
    return None


def _nesting(text: str) -> int:
    """How deep arrays and objects nest in a valid JSON text, counted as serde_json counts while reading."""
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING_LITERAL.sub("", text)):
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


_decoder = json.JSONDecoder(parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
# What JSONDecoder.raw_decode calls: the scanner JSONDecoder made for _decoder's settings (see from_json).
_scan_once: Callable[[str, int], tuple[Any, int]] = vars(_decoder)["scan_once"]


def _refuse_duplicate_fields(text: str) -> None:
    """serde_json refuses a job that names one of its fields twice; so do we (slow path, rare)."""
    objects: list[list[tuple[str, Any]]] = []

    def keep_pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        objects.append(items)
        return dict(items)

    json.JSONDecoder(
        parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant, object_pairs_hook=keep_pairs
    ).decode(text)
    # The parser completes inner objects first: the last one is the job itself.
    names = [name for name, _ in objects[-1]]
    for name in (*_REQUIRED, *_KNOWN_OPTIONAL):
        if names.count(name) > 1:
            raise JobDecodeError(f"duplicate field {name!r} in job")


@dataclass(frozen=True, slots=True)
class Job:
    """One queued job: which listener runs for which event, with the event's data."""

    event_name: str
    listener_type: str
    payload: Any
    uuid: str | None = None
    attempts: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=True, repr=False)

    def to_json(self) -> str:
        """The wire form: byte-identical to serde_json for the three required keys."""
        out = ['{"event_name":']
        if type(self.event_name) is not str or type(self.listener_type) is not str:
            raise JobEncodeError("event_name and listener_type must be strings")
        _encode(self.event_name, "event_name", 0, out)
        out.append(',"listener_type":')
        _encode(self.listener_type, "listener_type", 0, out)
        out.append(',"payload":')
        _encode(self.payload, "payload", 0, out)
        if self.uuid is not None:
            if type(self.uuid) is not str:
                raise JobEncodeError(f"uuid: must be a string, got {self.uuid!r}")
            out.append(',"uuid":')
            _encode(self.uuid, "uuid", 0, out)
        if self.attempts is not None:
            if type(self.attempts) is not int or self.attempts < 0:
                raise JobEncodeError(f"attempts: must be a non-negative integer, got {self.attempts!r}")
            out.append(',"attempts":')
            _encode(self.attempts, "attempts", 0, out)
        for key in self.extra:
            if type(key) is not str:
                raise JobEncodeError(f"extra key {key!r} is a {type(key).__name__}; JSON keys are strings")
        for key in sorted(self.extra):
            if key in _REQUIRED or key in _KNOWN_OPTIONAL:
                raise JobEncodeError(f"extra key {key!r} collides with a field of the job")
            out.append(",")
            _encode(key, "extra key", 0, out)
            out.append(":")
            _encode(self.extra[key], key, 0, out)  # beside payload, with the same depth limit
        out.append("}")
        return "".join(out)

    @classmethod
    def from_json(cls, data: str | bytes | bytearray) -> Job:
        """Read a job from its wire form; a malformed one raises :class:`JobDecodeError`."""
        if isinstance(data, (bytes, bytearray)):
            try:
                text = bytes(data).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise JobDecodeError(f"job is not valid UTF-8: {exc.reason} at byte {exc.start}") from None
        elif isinstance(data, str):
            text = data
            if _SURROGATE.search(text):
                raise JobDecodeError("job text holds a lone surrogate, which is not valid Unicode")
        else:
            raise JobDecodeError(f"a job is read from str or bytes, not {type(data).__name__}")
        try:
            # The scanner alone, as JSONDecoder.raw_decode runs it, for a text with nothing around
            # the job; anything else (whitespace, extra data, an error) goes the whole way, which
            # accepts the whitespace and words the error.
            try:
                value, end = _scan_once(text, 0)
            except StopIteration:  # no value at the very start
                end = -1
            if end != len(text):
                value = _decoder.decode(text)
        except JobDecodeError:
            raise
        except json.JSONDecodeError as exc:
            raise JobDecodeError(f"job is not valid JSON: {exc}") from None
        except RecursionError:
            raise JobDecodeError("job is nested too deeply") from None
        if not isinstance(value, dict):
            raise JobDecodeError(f"a job is a JSON object, got {type(value).__name__}")
        # serde_json refuses a field named twice. A name can only repeat if its quoted form occurs
        # twice in the text, or if it is spelled with an escape: a rare text, read again slowly.
        escaped = "\\" in text
        if (
            text.count('"event_name"') > 1
            or text.count('"listener_type"') > 1
            or text.count('"payload"') > 1
            or text.count('"uuid"') > 1
            or text.count('"attempts"') > 1
            or (escaped and _ESCAPED_NAME_CHAR.search(text))
        ):
            _refuse_duplicate_fields(text)
        # serde_json refuses these in every value it reads, also in one that a repeated key replaces
        # later, which the parsed dict no longer holds: so they are looked for in the text.
        surrogates = escaped and _ESCAPED_SURROGATE.search(text) is not None
        if surrogates and (lone := _lone_surrogate_escape(text)):
            found = _find_surrogate(value, "job")  # name the path when the parsed job still holds it
            where = f"{found}: lone surrogate" if found else f"lone surrogate {lone}"
            raise JobDecodeError(f"{where} in a string, which is not valid Unicode")
        deep = text.count("[") + text.count("{") > MAX_PAYLOAD_DEPTH
        if deep and _nesting(text) > MAX_PAYLOAD_DEPTH + 1:
            raise JobDecodeError(f"a value in the job is nested deeper than {MAX_PAYLOAD_DEPTH} levels")
        return cls._checked(value, surrogates=surrogates, deep=deep)

    @classmethod
    def from_dict(cls, value: Mapping[str, Any], *, check_text: str | None = None) -> Job:
        """Build a job from an already-parsed JSON object, checking its fields (``check_text``: the
        text it was parsed from, which spares the checks that text rules out)."""
        if check_text is None:
            return cls._checked(value, surrogates=True, deep=True)
        surrogates = _ESCAPED_SURROGATE.search(check_text) is not None
        return cls._checked(
            value, surrogates=surrogates, deep=check_text.count("[") + check_text.count("{") > MAX_PAYLOAD_DEPTH
        )

    @classmethod
    def _checked(cls, value: Mapping[str, Any], *, surrogates: bool, deep: bool) -> Job:
        """:meth:`from_dict`'s checks; ``surrogates``/``deep``: False when the text shows there can be
        no lone surrogate / no nesting past the limit, so those walks of the value are skipped."""
        for name in _REQUIRED:
            if name not in value:
                raise JobDecodeError(f"job has no {name!r} field")
        for name in ("event_name", "listener_type"):
            if not isinstance(value[name], str):
                raise JobDecodeError(f"job field {name!r} must be a string, got {type(value[name]).__name__}")
        uuid = value.get("uuid")
        if uuid is not None and not isinstance(uuid, str):
            raise JobDecodeError(f"job field 'uuid' must be a string, got {type(uuid).__name__}")
        attempts = value.get("attempts")
        if attempts is not None and (type(attempts) is not int or attempts < 0):
            raise JobDecodeError(f"job field 'attempts' must be a non-negative integer, got {attempts!r}")
        if surrogates:
            found = _find_surrogate(dict(value), "job")
            if found:
                raise JobDecodeError(f"{found}: lone surrogate in a string, which is not valid Unicode")
        # Most jobs hold the known fields only: then nothing else needs looking at.
        if len(value) == 3 + ("uuid" in value) + ("attempts" in value):
            extra: dict[str, Any] = {}
        else:
            extra = {k: v for k, v in value.items() if k not in _REQUIRED and k not in _KNOWN_OPTIONAL}
        if deep:
            if _depth(value.get("payload")) > MAX_PAYLOAD_DEPTH:
                raise JobDecodeError(f"payload is nested deeper than {MAX_PAYLOAD_DEPTH} levels")
            # Unknown keys sit beside the payload, and serde_json's limit holds for the whole document.
            for key, item in extra.items():
                if _depth(item) > MAX_PAYLOAD_DEPTH:
                    raise JobDecodeError(f"job key {key!r} is nested deeper than {MAX_PAYLOAD_DEPTH} levels")
        if cls is not Job:
            return cls(value["event_name"], value["listener_type"], value["payload"], uuid, attempts, extra)
        return _checked_job(value["event_name"], value["listener_type"], value["payload"], uuid, attempts, extra)

    def replace(self, **changes: Any) -> Job:
        """A copy with some fields changed (``dataclasses.replace`` for this frozen type)."""
        import dataclasses

        return dataclasses.replace(self, **changes)


# A job read off the wire, its fields checked, is made with its slots set directly: the frozen
# dataclass's __init__ sets each of the six through object.__setattr__, which took twice as long,
# once per job a worker takes. The same object either way (tests/unit/test_codec.py).
_new_object = object.__new__
_set_event_name, _set_listener_type, _set_payload, _set_uuid, _set_attempts, _set_extra = (
    Job.__dict__[name].__set__ for name in ("event_name", "listener_type", "payload", "uuid", "attempts", "extra")
)


def _checked_job(  # noqa: PLR0917 (Job's own fields, in its order, as its __init__ takes them)
    event_name: str, listener_type: str, payload: Any, uuid: str | None, attempts: int | None, extra: dict[str, Any]
) -> Job:
    job: Job = _new_object(Job)
    _set_event_name(job, event_name)
    _set_listener_type(job, listener_type)
    _set_payload(job, payload)
    _set_uuid(job, uuid)
    _set_attempts(job, attempts)
    _set_extra(job, extra)
    return job
