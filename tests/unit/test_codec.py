"""The wire codec (SPEC §3): serde_json's encoding, its refusals, and serde_json's reading of input."""

from __future__ import annotations

import enum
import json
import re
import sys
from decimal import Decimal
from typing import Any

import pytest

from oxide.errors import JobDecodeError, JobEncodeError, OxideError
from oxide.wire import MAX_PAYLOAD_DEPTH, Job, encode_value, format_float
from tests.jsonvalues import same_json

HEAD = '{"event_name":"e","listener_type":"l","payload":'


def job_text(payload_json: str, tail: str = "") -> str:
    return f"{HEAD}{payload_json}{tail}}}"


def payload_of(text: str) -> Any:
    return Job.from_json(text).payload


# -- floats, as serde_json (ryu) writes them ------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1.0"),
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (1.5, "1.5"),
        (100.0, "100.0"),
        (0.1, "0.1"),
        (0.3, "0.3"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1 / 3, "0.3333333333333333"),
        (1e15, "1000000000000000.0"),  # 16 digits before the point: still positional
        (1e16, "1e16"),  # 17: scientific
        (1234567890123456.7, "1234567890123456.8"),
        (12345678901234567.0, "1.2345678901234568e16"),
        (9007199254740993.0, "9007199254740992.0"),
        (9999999999999998.0, "9999999999999998.0"),
        (2.0**63, "9.223372036854776e18"),
        (1e21, "1e21"),
        (1e100, "1e100"),
        (-1.5e23, "-1.5e23"),
        (0.0001, "0.0001"),
        (0.00001, "0.00001"),  # the last positional small number
        (1.234e-5, "0.00001234"),
        (0.000001, "1e-6"),  # scientific from here on
        (1.234e-6, "1.234e-6"),
        (1.5e-7, "1.5e-7"),
        (-1e-5, "-0.00001"),
        (5e-324, "5e-324"),  # the smallest subnormal
        (1.2e-310, "1.2e-310"),
        (2.2250738585072014e-308, "2.2250738585072014e-308"),  # the smallest normal
        (sys.float_info.max, "1.7976931348623157e308"),
        (-sys.float_info.max, "-1.7976931348623157e308"),
    ],
)
def test_float_format(value: float, text: str) -> None:
    assert format_float(value) == text
    assert encode_value(value) == text
    assert job_text(text) == Job("e", "l", value).to_json()
    # and it reads back as the very same float, sign of zero included
    assert same_json(payload_of(job_text(text)), value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinities_are_refused(value: float) -> None:
    with pytest.raises(JobEncodeError, match=r"^payload\['x'\]\[1\]: .* cannot be written as JSON"):
        Job("e", "l", {"x": [0, value]}).to_json()


# -- integers -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, -1, 2**63 - 1, -(2**63), 2**64 - 1])
def test_integers_in_range_are_written_as_integers(value: int) -> None:
    assert encode_value(value) == str(value)
    assert same_json(payload_of(job_text(str(value))), value)


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1, 10**30, -(10**30)])
def test_integers_out_of_range_are_refused(value: int) -> None:
    with pytest.raises(JobEncodeError, match=rf"^payload\['n'\]: integer {value} is outside \[-2\*\*63, 2\*\*64-1\]"):
        Job("e", "l", {"n": value}).to_json()


# -- strings --------------------------------------------------------------------------------------


def test_strings_are_raw_utf8_with_serde_json_escapes() -> None:
    value = 'é ☃ 😀 "q" \\ \n\r\t\b\f \x00\x1f \x7f \u2028'
    expected = '"é ☃ 😀 \\"q\\" \\\\ \\n\\r\\t\\b\\f \\u0000\\u001f \x7f \u2028"'
    assert encode_value(value) == expected
    assert payload_of(job_text(expected)) == value


def test_utf8_is_written_raw_in_the_job() -> None:
    assert (
        Job("é", "l", "😀").to_json().encode("utf-8")
        == '{"event_name":"é","listener_type":"l","payload":"😀"}'.encode()
    )


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        ("a\ud800b", "payload"),
        (["ok", "\udfff"], r"payload\[1\]"),
        ({"k": {"j": "\udc00"}}, r"payload\['k'\]\['j'\]"),
        ("\ud83d\ude00", "payload"),  # a surrogate pair as two code points is not a character either
    ],
)
def test_lone_surrogates_in_values_are_refused(payload: Any, path: str) -> None:
    with pytest.raises(JobEncodeError, match=rf"^{path}: string holds a lone surrogate"):
        Job("e", "l", payload).to_json()


def test_lone_surrogate_in_a_key_is_refused() -> None:
    with pytest.raises(JobEncodeError, match=r"^payload\['outer'\]: object key '\\ud800' holds a lone surrogate"):
        Job("e", "l", {"outer": {"\ud800": 1}}).to_json()


@pytest.mark.parametrize("field", ["event_name", "listener_type"])
def test_lone_surrogate_in_a_name_is_refused(field: str) -> None:
    names = {"event_name": "e", "listener_type": "l", field: "x\ud800"}
    with pytest.raises(JobEncodeError, match=f"^{field}: string holds a lone surrogate"):
        Job(names["event_name"], names["listener_type"], None).to_json()


# -- types JSON has no place for ------------------------------------------------------------------


class Colour(enum.IntEnum):
    RED = 1


class Size(enum.StrEnum):
    SMALL = "s"


class MyFloat(float):
    pass


class MyDict(dict[str, Any]):
    pass


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ((1, 2), "builtins.tuple"),
        ({1, 2}, "builtins.set"),
        (frozenset(), "builtins.frozenset"),
        (b"bytes", "builtins.bytes"),
        (bytearray(b"x"), "builtins.bytearray"),
        (Decimal("1.5"), "decimal.Decimal"),
        (Colour.RED, "tests.unit.test_codec.Colour"),
        (Size.SMALL, "tests.unit.test_codec.Size"),
        (MyFloat(1.0), "tests.unit.test_codec.MyFloat"),
        (MyDict(), "tests.unit.test_codec.MyDict"),
        (object(), "builtins.object"),
        (1j, "builtins.complex"),
    ],
)
def test_non_json_types_are_refused_with_their_path(value: Any, kind: str) -> None:
    with pytest.raises(JobEncodeError, match=rf"^payload\['a'\]\[0\]\['b'\]: a {kind} is not a JSON value"):
        Job("e", "l", {"a": [{"b": value}]}).to_json()


@pytest.mark.parametrize("key", [1, 1.5, None, True, ("t",), Colour.RED])
def test_non_string_keys_are_refused_with_their_path(key: Any) -> None:
    with pytest.raises(
        JobEncodeError, match=rf"^payload\['a'\]: object key {re.escape(repr(key))} is a .*JSON keys are strings"
    ):
        Job("e", "l", {"a": {key: 1}}).to_json()


def test_a_refused_job_writes_nothing_partial() -> None:
    job = Job("e", "l", {"ok": 1, "zz": float("nan")})
    with pytest.raises(JobEncodeError):
        job.to_json()
    assert encode_value({"ok": 1}) == '{"ok":1}'


@pytest.mark.parametrize("field", ["event_name", "listener_type"])
def test_names_must_be_strings(field: str) -> None:
    names: dict[str, Any] = {"event_name": "e", "listener_type": "l", field: 5}
    with pytest.raises(JobEncodeError, match="event_name and listener_type must be strings"):
        Job(names["event_name"], names["listener_type"], None).to_json()


def test_encode_errors_are_oxide_errors_and_value_errors() -> None:
    assert issubclass(JobEncodeError, OxideError)
    assert issubclass(JobEncodeError, ValueError)
    assert issubclass(JobDecodeError, OxideError)


# -- the job object ---------------------------------------------------------------------------


def test_required_keys_in_order_and_payload_keys_sorted_at_every_level() -> None:
    job = Job("auth.user_registered", "myapp.listeners.SendWelcomeEmail", {"user_id": 7, "email": "a@b.c"})
    assert job.to_json() == (
        '{"event_name":"auth.user_registered","listener_type":"myapp.listeners.SendWelcomeEmail",'
        '"payload":{"email":"a@b.c","user_id":7}}'
    )
    nested = Job("e", "l", {"b": [{"z": 1, "a": 2}], "a": {"y": None, "x": True}})
    assert nested.to_json() == job_text('{"a":{"x":true,"y":null},"b":[{"a":2,"z":1}]}')


def test_keys_sort_by_code_point_as_serde_json_does() -> None:
    # serde_json's map is a BTreeMap<String, _>: byte order of UTF-8, which is code point order.
    assert encode_value({"é": 1, "z": 2, "Z": 3, "😀": 4, "\uffff": 5}) == '{"Z":3,"z":2,"é":1,"\uffff":5,"😀":4}'


def test_optional_keys_are_written_only_when_set_after_payload() -> None:
    assert Job("e", "l", 1).to_json() == job_text("1")
    job = Job("e", "l", 1, uuid="u-1", attempts=2, extra={"zeta": [1], "alpha": {"b": 1, "a": 2}})
    assert job.to_json() == job_text("1", ',"uuid":"u-1","attempts":2,"alpha":{"a":2,"b":1},"zeta":[1]')


@pytest.mark.parametrize("key", ["event_name", "payload", "uuid", "attempts"])
def test_extra_key_may_not_shadow_a_field(key: str) -> None:
    with pytest.raises(JobEncodeError, match=f"extra key '{key}' collides with a field of the job"):
        Job("e", "l", 1, extra={key: 1}).to_json()


def test_extra_values_are_checked_like_the_payload() -> None:
    with pytest.raises(JobEncodeError, match=r"^trace\[0\]: .*NaN"):
        Job("e", "l", 1, extra={"trace": [float("nan")]}).to_json()


def test_extra_keys_must_be_strings() -> None:
    with pytest.raises(JobEncodeError, match="extra key 7 is a int; JSON keys are strings"):
        Job("e", "l", 1, extra={7: "x"}).to_json()  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"uuid": 5}, "uuid: must be a string, got 5"),
        ({"attempts": -1}, "attempts: must be a non-negative integer, got -1"),
        ({"attempts": "2"}, "attempts: must be a non-negative integer, got '2'"),
        ({"attempts": True}, "attempts: must be a non-negative integer, got True"),
    ],
)
def test_optional_fields_are_checked_at_push(changes: dict[str, Any], message: str) -> None:
    # Written unchecked, these would make a job that every reader refuses as undecodable.
    with pytest.raises(JobEncodeError, match=message):
        Job("e", "l", 1).replace(**changes).to_json()


def test_jobs_compare_by_value_and_replace_makes_a_copy() -> None:
    job = Job("e", "l", {"a": 1}, uuid="u")
    assert job == Job("e", "l", {"a": 1}, uuid="u")
    assert job != Job("e", "l", {"a": 1}, uuid="v")
    assert job.replace(attempts=1) == Job("e", "l", {"a": 1}, uuid="u", attempts=1)
    assert job.attempts is None


# -- nesting depth --------------------------------------------------------------------------------


def nested(depth: int) -> Any:
    value: Any = 0
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


def test_payload_nesting_up_to_the_serde_limit_round_trips() -> None:
    job = Job("e", "l", nested(MAX_PAYLOAD_DEPTH))
    text = job.to_json()
    assert same_json(Job.from_json(text).payload, job.payload)


def test_payload_nesting_beyond_the_limit_is_refused_both_ways() -> None:
    with pytest.raises(JobEncodeError, match=f"nested deeper than {MAX_PAYLOAD_DEPTH} levels"):
        Job("e", "l", nested(MAX_PAYLOAD_DEPTH + 1)).to_json()
    deep = "[" * (MAX_PAYLOAD_DEPTH + 1) + "]" * (MAX_PAYLOAD_DEPTH + 1)
    with pytest.raises(JobDecodeError, match=f"nested deeper than {MAX_PAYLOAD_DEPTH} levels"):
        Job.from_json(job_text(deep))


def test_extra_keys_have_the_payload_depth_limit() -> None:
    # serde_json's limit counts from the document: an unknown key sits at the payload's level.
    fits = "[" * MAX_PAYLOAD_DEPTH + "]" * MAX_PAYLOAD_DEPTH
    job = Job.from_json(job_text("1", f',"x":{fits}'))
    assert job.to_json() == job_text("1", f',"x":{fits}')
    too_deep = "[" * (MAX_PAYLOAD_DEPTH + 1) + "]" * (MAX_PAYLOAD_DEPTH + 1)
    with pytest.raises(JobDecodeError, match=f"nested deeper than {MAX_PAYLOAD_DEPTH} levels"):
        Job.from_json(job_text("1", f',"x":{too_deep}'))


def test_absurd_nesting_is_a_decode_error_not_a_crash() -> None:
    with pytest.raises(JobDecodeError, match="nested"):
        Job.from_json(job_text("[" * 100_000 + "]" * 100_000))


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = job_text(json.dumps("[" * 500 + "{" * 500))
    assert Job.from_json(text).payload == "[" * 500 + "{" * 500


# -- decoding the way serde_json reads --------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "value"),
    [
        ("-0", -0.0),  # serde_json reads -0 as the float -0.0
        ("0", 0),
        ("-0.0", -0.0),
        ("18446744073709551615", 2**64 - 1),
        ("18446744073709551616", 18446744073709551616.0),  # beyond u64: a float
        ("-9223372036854775808", -(2**63)),
        ("-9223372036854775809", -9223372036854775809.0),  # beyond i64: a float
        ("1" + "0" * 300, 1e300),
        ("1E2", 100.0),
        ("1e-400", 0.0),  # underflow is zero, as in Rust's float parsing
        ("2.5e+3", 2500.0),
    ],
)
def test_numbers_read_as_serde_json_reads_them(number: str, value: float | int) -> None:
    assert same_json(payload_of(job_text(number)), value)


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1" + "0" * 400, "-" + "9" * 400, "1" * 5000, "1" * 5000 + ".5"])
def test_numbers_beyond_the_float_range_are_refused(number: str) -> None:
    with pytest.raises(JobDecodeError, match="out of range"):
        Job.from_json(job_text(number))


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_json_number_literals_are_refused(literal: str) -> None:
    with pytest.raises(JobDecodeError, match=f"{literal} is not valid JSON"):
        Job.from_json(job_text(literal))


@pytest.mark.parametrize(
    "text",
    [
        '{"event_name":"a","event_name":"b","listener_type":"l","payload":1}',
        '{"event_name":"e","listener_type":"l","listener_type":"m","payload":1}',
        '{"event_name":"e","listener_type":"l","payload":1,"payload":2}',
        '{"event_name":"e","listener_type":"l","payload":1,"uuid":"a","uuid":"b"}',
        '{"event_name":"e","listener_type":"l","payload":1,"attempts":1,"attempts":2}',
        # the same key spelled with an escape is still the same key
        '{"event_name":"e","listener_type":"l","payload":1,"event\\u005fname":"b"}',
        '{"event_name":"e","listener_type":"l","payload":1,"\\u0075uid":"a","uuid":"b"}',
    ],
)
def test_duplicate_job_fields_are_refused(text: str) -> None:
    with pytest.raises(JobDecodeError, match=r"duplicate field '(event_name|listener_type|payload|uuid|attempts)'"):
        Job.from_json(text)


def test_field_names_repeated_inside_the_payload_are_fine() -> None:
    text = job_text('{"event_name":1,"payload":{"payload":2},"uuid":[]}', ',"uuid":"u"')
    job = Job.from_json(text)
    assert job.payload == {"event_name": 1, "payload": {"payload": 2}, "uuid": []}
    assert job.uuid == "u"


def test_unknown_keys_are_kept_and_written_after_payload() -> None:
    text = (
        '{"zeta":{"b":1,"a":2},"payload":[1],"attempts":3,"listener_type":"l","uuid":"u","alpha":null,"event_name":"e"}'
    )
    job = Job.from_json(text)
    assert job == Job("e", "l", [1], uuid="u", attempts=3, extra={"zeta": {"a": 2, "b": 1}, "alpha": None})
    assert job.to_json() == job_text("[1]", ',"uuid":"u","attempts":3,"alpha":null,"zeta":{"a":2,"b":1}')


def test_missing_optional_keys_take_their_defaults() -> None:
    job = Job.from_json(job_text("null"))
    assert job.uuid is None
    assert job.attempts is None
    assert dict(job.extra) == {}


def test_whitespace_between_tokens_is_allowed() -> None:
    text = ' \n{ "payload" :\t[ 1 , 2 ] ,\r\n "event_name" : "e" , "listener_type" : "l" }\n '
    assert Job.from_json(text) == Job("e", "l", [1, 2])


def test_escaped_surrogate_pairs_read_as_one_character() -> None:
    job = Job.from_json(job_text('"\\ud83d\\ude00"', ',"k\\uD83D\\uDE00":1'))
    assert job.payload == "😀"
    assert dict(job.extra) == {"k😀": 1}


@pytest.mark.parametrize(
    ("payload_json", "where"),
    [
        ('"\\ud800"', r"job\['payload'\]"),
        ('"a\\udfffb"', r"job\['payload'\]"),
        ('["x","\\uDC00"]', r"job\['payload'\]\[1\]"),
        ('"\\ude00\\ud83d"', r"job\['payload'\]"),  # a pair in the wrong order is two lone surrogates
        ('{"\\ud800":1}', r"job\['payload'\] \(a key\)"),
    ],
)
def test_escaped_lone_surrogates_are_refused(payload_json: str, where: str) -> None:
    with pytest.raises(JobDecodeError, match=rf"{where}: lone surrogate"):
        Job.from_json(job_text(payload_json))


def test_escaped_lone_surrogate_in_a_name_is_refused() -> None:
    with pytest.raises(JobDecodeError, match=r"\['event_name'\]: lone surrogate"):
        Job.from_json('{"event_name":"\\ud800","listener_type":"l","payload":1}')


@pytest.mark.parametrize("text", [job_text('"\ud800"'), job_text('{"\udfff":1}')])
def test_raw_lone_surrogates_in_input_text_are_refused(text: str) -> None:
    with pytest.raises(JobDecodeError, match="lone surrogate"):
        Job.from_json(text)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff", "not valid UTF-8"),
        (job_text('"\xe9"').encode("latin-1"), "not valid UTF-8"),
        (job_text('"x"').encode("utf-8").replace(b"x", b"\xed\xa0\x80"), "not valid UTF-8"),  # a surrogate, encoded
        (job_text('"x"').encode("utf-8").replace(b"x", b"\xc0\xaf"), "not valid UTF-8"),  # overlong
    ],
)
def test_bytes_must_be_utf8(data: bytes, message: str) -> None:
    with pytest.raises(JobDecodeError, match=message):
        Job.from_json(data)


def test_bytes_and_bytearray_are_read_like_text() -> None:
    text = job_text('{"é":"😀"}')
    assert Job.from_json(text.encode()) == Job.from_json(bytearray(text.encode())) == Job.from_json(text)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("", "not valid JSON"),
        ("{", "not valid JSON"),
        (job_text("1") + " x", "not valid JSON"),  # trailing garbage
        ("\ufeff" + job_text("1"), "not valid JSON"),  # a BOM is not JSON
        (job_text('"a\nb"'), "not valid JSON"),  # raw control character in a string
        (job_text("[1,]"), "not valid JSON"),
        (job_text("01"), "not valid JSON"),
        ("[]", "a job is a JSON object, got list"),
        ('"job"', "a job is a JSON object, got str"),
        ('{"listener_type":"l","payload":1}', "job has no 'event_name' field"),
        ('{"event_name":"e","payload":1}', "job has no 'listener_type' field"),
        ('{"event_name":"e","listener_type":"l"}', "job has no 'payload' field"),
        ('{"event_name":1,"listener_type":"l","payload":1}', "job field 'event_name' must be a string, got int"),
        ('{"event_name":"e","listener_type":null,"payload":1}', "job field 'listener_type' must be a string"),
        (job_text("1", ',"uuid":5'), "job field 'uuid' must be a string, got int"),
        (job_text("1", ',"attempts":-1'), "job field 'attempts' must be a non-negative integer, got -1"),
        (job_text("1", ',"attempts":1.0'), "'attempts' must be a non-negative integer, got 1.0"),
        (job_text("1", ',"attempts":true'), "'attempts' must be a non-negative integer, got True"),
    ],
)
def test_malformed_jobs_are_refused(data: str, message: str) -> None:
    with pytest.raises(JobDecodeError, match=message):
        Job.from_json(data)


def test_null_optional_fields_read_as_missing() -> None:
    assert Job.from_json(job_text("1", ',"uuid":null,"attempts":null')) == Job("e", "l", 1)


def test_only_text_and_bytes_are_read() -> None:
    with pytest.raises(JobDecodeError, match="a job is read from str or bytes, not dict"):
        Job.from_json({"event_name": "e"})  # type: ignore[arg-type]


def test_from_dict_checks_like_from_json() -> None:
    with pytest.raises(JobDecodeError, match=r"job\['payload'\]\[0\]: lone surrogate"):
        Job.from_dict({"event_name": "e", "listener_type": "l", "payload": ["\ud800"]})
    with pytest.raises(JobDecodeError, match="nested deeper"):
        Job.from_dict({"event_name": "e", "listener_type": "l", "payload": nested(MAX_PAYLOAD_DEPTH + 1)})
    assert Job.from_dict({"event_name": "e", "listener_type": "l", "payload": 1, "x": 2}).extra == {"x": 2}


def test_from_dict_limits_the_depth_of_unknown_keys_too() -> None:
    # serde_json's limit holds for the whole document, so a key beside the payload is held to it as well.
    job = {"event_name": "e", "listener_type": "l", "payload": 1, "meta": nested(MAX_PAYLOAD_DEPTH + 1)}
    with pytest.raises(JobDecodeError, match=r"job key 'meta' is nested deeper than 126 levels"):
        Job.from_dict(job)
    job["meta"] = nested(MAX_PAYLOAD_DEPTH)
    assert Job.from_dict(job).extra == {"meta": nested(MAX_PAYLOAD_DEPTH)}


@pytest.mark.parametrize(
    ("job", "message"),
    [
        (Job("e", "l", 1, uuid="\ud800"), "uuid: string holds a lone surrogate, which is not valid Unicode"),
        (Job("e", "l", 1, extra={"\ud800": 1}), "extra key: string holds a lone surrogate, which is not valid Unicode"),
        (Job("e", "l", 1, attempts=2**70), f"attempts: integer {2**70} is outside [-2**63, 2**64-1]"),
        (Job(1, "l", 1), "event_name and listener_type must be strings"),  # type: ignore[arg-type]
        (Job("e", "l", {1: "x"}), "payload: object key 1 is a int; JSON keys are strings"),
        (
            Job("e", "l", object()),
            "payload: a builtins.object is not a JSON value (use dict with str keys, list, str, int, float, bool or None)",
        ),
    ],
)
def test_each_field_that_cannot_be_written_is_named_in_the_error(job: Job, message: str) -> None:
    with pytest.raises(JobEncodeError) as info:
        job.to_json()
    assert str(info.value) == message


def test_zero_attempts_is_written() -> None:
    assert Job("e", "l", 1, attempts=0).to_json() == '{"event_name":"e","listener_type":"l","payload":1,"attempts":0}'


def test_encode_value_allows_exactly_the_depth_limit_and_names_its_path() -> None:
    assert encode_value(nested(MAX_PAYLOAD_DEPTH)).count("[") + encode_value(nested(MAX_PAYLOAD_DEPTH)).count("{") == (
        MAX_PAYLOAD_DEPTH
    )
    with pytest.raises(JobEncodeError, match=rf"^meta(\[0\]|\['k'\])+: nested deeper than {MAX_PAYLOAD_DEPTH} levels$"):
        encode_value(nested(MAX_PAYLOAD_DEPTH + 1), "meta")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (-0.0, "-0.0"),
        (0.0, "0.0"),
        (-1.5, "-1.5"),
        (0.1, "0.1"),
        (0.00001, "0.00001"),
        (1e-7, "1e-7"),
        (10.0, "10.0"),
        (100.0, "100.0"),
        (1.5e300, "1.5e300"),
    ],
)
def test_float_text_at_the_layout_boundaries(value: float, text: str) -> None:
    # Signed zero, the last fixed-point exponent before e-notation, and trailing zeros kept in the integer part.
    assert encode_value(value) == text


def test_zero_attempts_is_read() -> None:
    assert Job.from_json('{"event_name":"e","listener_type":"l","payload":1,"attempts":0}').attempts == 0


@pytest.mark.parametrize("opener", ["[", '{"k":'])
def test_text_nested_past_the_limit_with_one_kind_of_bracket_is_refused(opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    payload = opener * (MAX_PAYLOAD_DEPTH + 1) + "0" + closer * (MAX_PAYLOAD_DEPTH + 1)
    with pytest.raises(JobDecodeError, match="nested"):
        Job.from_json(f'{{"event_name":"e","listener_type":"l","payload":{payload}}}')


@pytest.mark.parametrize("container", [list, dict])
def test_encode_value_limits_lists_and_objects_alike(container: type) -> None:
    value: Any = 0
    for _ in range(MAX_PAYLOAD_DEPTH):
        value = [value] if container is list else {"k": value}
    assert encode_value(value)
    with pytest.raises(JobEncodeError, match=f"nested deeper than {MAX_PAYLOAD_DEPTH} levels"):
        encode_value([value] if container is list else {"k": value})


def test_a_number_out_of_range_is_named_by_its_first_40_characters() -> None:
    number = "1234567890" * 5 + "0" * 400
    with pytest.raises(JobDecodeError) as info:
        Job.from_json(job_text(number))
    assert str(info.value) == f"number {number[:40]} is out of range"


def test_a_lone_surrogate_in_a_value_a_repeated_key_replaced_is_named_by_its_escape() -> None:
    # serde_json reads every value, also one the later "x" replaces: the parsed job no longer holds it.
    text = '{"event_name":"e","listener_type":"l","payload":1,"x":"a\\udc00b","x":2}'
    with pytest.raises(JobDecodeError) as info:
        Job.from_json(text)
    assert str(info.value) == "lone surrogate \\udc00 in a string, which is not valid Unicode"


@pytest.mark.parametrize("innermost", [[], {}])
def test_an_empty_list_or_object_counts_one_level_at_the_depth_limit(innermost: Any) -> None:
    payload: Any = innermost
    for _ in range(MAX_PAYLOAD_DEPTH - 1):
        payload = [payload]
    job = Job.from_dict({"event_name": "e", "listener_type": "l", "payload": payload})
    assert job.payload == payload
    with pytest.raises(JobDecodeError, match=f"nested deeper than {MAX_PAYLOAD_DEPTH} levels"):
        Job.from_dict({"event_name": "e", "listener_type": "l", "payload": [payload]})


@pytest.mark.parametrize(("opening", "closing", "levels"), [('{"k":', "}", 1), ('[{"k":', "}]", 2)])
def test_extra_keys_nested_with_objects_have_the_same_limit(opening: str, closing: str, levels: int) -> None:
    def nested(depth: int) -> str:
        return opening * (depth // levels) + "1" + closing * (depth // levels)

    fits = nested(MAX_PAYLOAD_DEPTH)
    assert Job.from_json(job_text("1", f',"x":{fits}')).to_json() == job_text("1", f',"x":{fits}')
    too_deep = nested(MAX_PAYLOAD_DEPTH + levels)
    with pytest.raises(JobDecodeError) as info:
        Job.from_json(job_text("1", f',"x":{too_deep}'))
    assert str(info.value) == f"a value in the job is nested deeper than {MAX_PAYLOAD_DEPTH} levels"


def test_a_value_encoded_alone_is_named_payload_in_errors() -> None:
    with pytest.raises(JobEncodeError) as info:
        encode_value(float("nan"))
    assert str(info.value) == "payload: nan cannot be written as JSON (NaN and infinities are refused)"


def test_the_refusals_of_absurd_nesting_and_of_raw_surrogates_say_exactly_that() -> None:
    with pytest.raises(JobDecodeError) as nested:
        Job.from_json(job_text("[" * 100_000 + "]" * 100_000))
    assert str(nested.value) == "job is nested too deeply"
    with pytest.raises(JobDecodeError) as surrogate:
        Job.from_json(job_text('"\ud800"'))
    assert str(surrogate.value) == "job text holds a lone surrogate, which is not valid Unicode"


def test_sibling_lists_before_a_deep_one_neither_add_to_its_depth_nor_hide_it() -> None:
    siblings = "[]," * 3

    def payload(deep: int) -> str:
        return "[" + siblings + "[" * deep + "]" * deep + "]"

    fits = job_text(payload(MAX_PAYLOAD_DEPTH - 1))
    assert Job.from_json(fits).to_json() == fits
    with pytest.raises(JobDecodeError) as info:
        Job.from_json(job_text(payload(MAX_PAYLOAD_DEPTH)))
    assert str(info.value) == f"a value in the job is nested deeper than {MAX_PAYLOAD_DEPTH} levels"


def test_a_job_read_off_the_wire_is_the_job_its_constructor_makes() -> None:
    # Jobs read off the wire are made with their slots set directly (wire._checked_job), not by the
    # frozen dataclass's __init__: every field set, equal and shown alike, still frozen.
    import dataclasses

    made = Job("shop.paid", "shop.Mailer", {"id": 7}, "u-1", 2, {"trace": "t"})
    read = Job.from_json(made.to_json())
    assert {f.name: getattr(read, f.name) for f in dataclasses.fields(Job)} == {
        f.name: getattr(made, f.name) for f in dataclasses.fields(Job)
    }
    assert read == made
    assert repr(read) == repr(made)
    plain = Job.from_json('{"event_name":"e","listener_type":"l","payload":null}')
    assert plain == Job("e", "l", None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        read.uuid = "other"  # type: ignore[misc]
