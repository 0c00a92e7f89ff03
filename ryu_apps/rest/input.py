"""Request bodies as strict JSON (pure): depth-limited, finite numbers, no duplicates.

:func:`parse_json` refuses what Python's ``json`` would accept but the API
must not: ``NaN``, ``Infinity``, numbers that overflow a float (``1e400``),
integers longer than 20 digits, nesting deeper than :data:`MAX_DEPTH`, a key
given twice, bytes that are not UTF-8. Each refusal is a :class:`JsonInputError`
whose message names the field (``template``, ``servers[2].name``) when there
is one.
"""

from __future__ import annotations

import json
import math
from typing import Any, List

#: Deepest nesting of arrays and objects accepted in a body.
MAX_DEPTH = 32
#: Longest integer literal accepted (digits).
MAX_INT_DIGITS = 20


class JsonInputError(ValueError):
    """A body that is not acceptable JSON; the message says where and why."""


class _Rejected:
    """A literal json accepted but the API refuses; reported with its field's path."""

    def __init__(self, text: str, why: str) -> None:
        self.text, self.why = text, why


def parse_json(body: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON document in ``body``; JsonInputError says what is wrong and where."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise JsonInputError(f"body is not UTF-8 text (byte {error.start})") from None
    too_deep = JsonInputError(f"body: JSON nested more than {max_depth} levels deep")
    try:
        document = json.loads(text, parse_constant=_constant, parse_float=_float,
                              parse_int=_int, object_pairs_hook=_object)
    except JsonInputError:
        raise
    except RecursionError:  # json's scanner stops itself at the interpreter's limit
        raise too_deep from None
    except ValueError as error:
        raise JsonInputError(f"body is not JSON: {error}") from None
    _check(document, max_depth, too_deep)
    return document


def _constant(text: str) -> _Rejected:
    return _Rejected(text, "expected a finite number")


def _float(text: str) -> Any:
    value = float(text)
    if not math.isfinite(value):
        return _Rejected(text, "number out of range")
    return value


def _int(text: str) -> Any:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        return _Rejected(text[:24] + ("..." if len(text) > 24 else ""),
                         f"integer longer than {MAX_INT_DIGITS} digits")
    return int(text)


def _object(pairs: List[tuple]) -> dict:
    document: dict = {}
    for key, value in pairs:
        if key in document:
            raise JsonInputError(f"body: field {key!r} given twice")
        document[key] = value
    return document


def _check(document: Any, max_depth: int, too_deep: JsonInputError) -> None:
    """Raise for nesting beyond ``max_depth`` or a refused literal (naming its field)."""
    stack = [(document, "", 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, _Rejected):
            raise JsonInputError(f"{where or 'body'}: {item.why}, got {item.text}")
        if isinstance(item, (dict, list)) and depth == max_depth:
            raise too_deep
        if isinstance(item, dict):
            stack.extend((v, f"{where}.{k}" if where else str(k), depth + 1)
                         for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(item))
