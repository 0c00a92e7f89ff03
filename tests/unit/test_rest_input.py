"""Strict JSON request bodies: depth, numbers, duplicates, encoding; the field named."""

from __future__ import annotations

import pytest

from ryu_apps.rest.input import MAX_DEPTH, JsonInputError, parse_json


def test_plain_json_is_read_as_usual():
    assert parse_json(b'{"event": "shutdown", "mac": "00:fa:00:00:00:01", "n": [1, 2.5]}') \
        == {"event": "shutdown", "mac": "00:fa:00:00:00:01", "n": [1, 2.5]}
    assert parse_json(b'"\\u00e9t\\u00e9"') == "été"


@pytest.mark.parametrize("body, message", [
    (b'{"template": 1e400}', "template: number out of range, got 1e400"),
    (b'{"template": -1e400}', "template: number out of range, got -1e400"),
    (b'{"template": NaN}', "template: expected a finite number, got NaN"),
    (b'{"a": {"b": [0, Infinity]}}', "a.b[1]: expected a finite number, got Infinity"),
    (b'[-Infinity]', "[0]: expected a finite number, got -Infinity"),
    (b'{"template": 1' + b"0" * 30 + b"}",
     "template: integer longer than 20 digits, got 100000000000000000000000..."),
    (b'{"template": 1' + b"0" * 5000 + b"}",   # Python's own 4300-digit limit never reached
     "template: integer longer than 20 digits, got 100000000000000000000000..."),
    (b'{"mac": "a", "mac": "b"}', "body: field 'mac' given twice"),
    (b"\xff\xfe{}", "body is not UTF-8 text (byte 0)"),
    (b"", "body is not JSON: Expecting value: line 1 column 1 (char 0)"),
    (b"{'a': 1}", "body is not JSON: Expecting property name enclosed in double quotes: "
                  "line 1 column 2 (char 1)"),
    (b'{"a": 1} {"b": 2}', "body is not JSON: Extra data: line 1 column 10 (char 9)"),
])
def test_what_is_refused_and_where(body, message):
    with pytest.raises(JsonInputError) as raised:
        parse_json(body)
    assert str(raised.value) == message


def test_depth_is_limited():
    assert parse_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None
    deeper = b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1)
    for body in (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), deeper):
        with pytest.raises(JsonInputError, match=f"^body: JSON nested more than {MAX_DEPTH} "
                                                 "levels deep$"):
            parse_json(body)


@pytest.mark.parametrize("depth", [2000, 65536])
def test_nesting_beyond_the_interpreter_limit_is_refused_not_a_crash(depth):
    for body in (b"[" * depth + b"]" * depth, b"[" * depth):   # closed, and not
        with pytest.raises(JsonInputError, match="nested more than"):
            parse_json(body)


def test_brackets_inside_strings_do_not_count():
    text = '{"x": "' + "[" * 1000 + '"}'
    assert parse_json(text.encode()) == {"x": "[" * 1000}
