"""Shared helpers for tests of the wire format: strict JSON equality and hypothesis strategies.

Python's ``==`` is too lenient for a codec test: ``1 == 1.0 == True`` and
``0.0 == -0.0``. :func:`same_json` compares types exactly and floats bit for bit.
"""

from __future__ import annotations

import math
import struct
from typing import Any

from hypothesis import strategies as st

from oxide.wire import Job

I64_MIN = -(2**63)
U64_MAX = 2**64 - 1


def same_json(a: Any, b: Any) -> bool:
    """True when ``a`` and ``b`` are the same JSON value, types and float bits included."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    return bool(a == b)


def same_job(a: Job, b: Job) -> bool:
    """Strict equality of two jobs (see :func:`same_json`)."""
    return (
        same_json(a.event_name, b.event_name)
        and same_json(a.listener_type, b.listener_type)
        and same_json(a.payload, b.payload)
        and same_json(a.uuid, b.uuid)
        and same_json(a.attempts, b.attempts)
        and same_json(dict(a.extra), dict(b.extra))
    )


# -- strategies ----------------------------------------------------------------------------------

# Valid Unicode only: no lone surrogates (category Cs), which the wire refuses.
texts = st.text(st.characters(codec="utf-8"), max_size=20)
# Hypothesis's own float distribution favours extremes; add floats written with few digits across the
# whole exponent range, and the neighbourhoods where serde_json switches between positional and scientific.
finite_floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.builds(lambda m, e: float(f"{m}e{e}"), st.integers(-(10**17), 10**17), st.integers(-330, 310)),
    st.floats(min_value=1e14, max_value=1e17) | st.floats(min_value=-1e17, max_value=-1e14),
    st.floats(min_value=1e-7, max_value=1e-4) | st.floats(min_value=-1e-4, max_value=-1e-7),
).filter(math.isfinite)
wire_ints = st.integers(min_value=I64_MIN, max_value=U64_MAX)
json_scalars = st.none() | st.booleans() | wire_ints | finite_floats | texts


def json_values(max_leaves: int = 30) -> st.SearchStrategy[Any]:
    """Any JSON value the wire can carry."""
    return st.recursive(
        json_scalars,
        lambda children: st.lists(children, max_size=5) | st.dictionaries(texts, children, max_size=5),
        max_leaves=max_leaves,
    )


# Names a producer would use: non-empty, printable, sometimes not ASCII.
names = st.text(st.characters(codec="utf-8", categories=("L", "N", "P")), min_size=1, max_size=30)
# Keys a job may carry besides its fields: anything but the names the job itself uses.
extra_keys = texts.filter(lambda k: k not in ("event_name", "listener_type", "payload", "uuid", "attempts"))


@st.composite
def jobs(draw: st.DrawFn, with_optional: bool = True) -> Job:
    """Any valid job; with ``with_optional``, sometimes a uuid, attempts and unknown keys."""
    uuid = attempts = None
    extra: dict[str, Any] = {}
    if with_optional:
        uuid = draw(st.none() | texts)
        attempts = draw(st.none() | st.integers(min_value=0, max_value=U64_MAX))
        extra = draw(st.dictionaries(extra_keys, json_values(8), max_size=3))
    return Job(draw(names), draw(names), draw(json_values()), uuid=uuid, attempts=attempts, extra=extra)


# -- jobs as another producer writes them ------------------------------------------------------

_WHITESPACE = st.sampled_from(["", " ", "  ", "\n", "\t", "\r\n", " \n\t "])


def _job_fields(job: Job) -> list[tuple[str, Any]]:
    fields: list[tuple[str, Any]] = [
        ("event_name", job.event_name),
        ("listener_type", job.listener_type),
        ("payload", job.payload),
    ]
    if job.uuid is not None:
        fields.append(("uuid", job.uuid))
    if job.attempts is not None:
        fields.append(("attempts", job.attempts))
    fields.extend(job.extra.items())
    return fields


@st.composite
def hand_written(draw: st.DrawFn, job: Job) -> str:
    """``job`` as another producer might write it: any key order, any whitespace, escaped or raw Unicode.

    Python's own ``json`` writes the values (insertion-ordered keys, ``1e+16``
    floats, optional indentation and ``\\uXXXX`` escapes), so nothing of our
    encoder is involved.
    """
    import json

    fields = draw(st.permutations(_job_fields(job)))
    ensure_ascii = draw(st.booleans())
    indent = draw(st.sampled_from([None, None, 0, 2]))
    parts = []
    for key, value in fields:
        before, after_key, after_colon, after = (draw(_WHITESPACE) for _ in range(4))
        parts.append(
            f"{before}{json.dumps(key, ensure_ascii=ensure_ascii)}{after_key}:{after_colon}"
            f"{json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, allow_nan=False)}{after}"
        )
    return draw(_WHITESPACE) + "{" + ",".join(parts) + "}" + draw(_WHITESPACE)
