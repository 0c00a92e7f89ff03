"""Field checks for template validation: a scope collecting located errors, and parsers (pure)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Callable, List, Mapping, Sequence, TypeGuard, TypeVar

from ryu_apps.core.template_errors import TemplateError

T = TypeVar("T")


@dataclass
class Scope:
    """Collects errors for one template (or one file, when ``template`` is None)."""

    errors: List[TemplateError]
    source: str
    template: str | None = None
    base: str = ""

    def error(self, path: str, message: str) -> None:
        self.errors.append(TemplateError(self.source, self.template, path, message))

    def path(self, *parts: str | int) -> str:
        return join_path(self.base, *parts)

    def mark(self) -> int:
        return len(self.errors)

    def clean_since(self, mark: int) -> bool:
        return len(self.errors) == mark



def check_keys(scope: Scope, path: str, mapping: Mapping, allowed: Sequence[str],
                required: Sequence[str] = ()) -> None:
    for key in mapping:
        if key not in allowed:
            scope.error(path, _unknown_key_message(key, allowed))
    for key in required:
        if key not in mapping:
            scope.error(join_path(path, key), "missing required key")


def _unknown_key_message(key: object, allowed: Sequence[str]) -> str:
    shown = (show(key) if isinstance(key, int) and not isinstance(key, bool)
             else _shorten(repr(key)))
    message = f"unknown key {shown} (expected one of: {', '.join(allowed)})"
    if isinstance(key, str) and len(key) <= 64:
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        if close:
            message += f"; did you mean {close[0]!r}?"
    return message


def parse_field(scope: Scope, path: str, mapping: Mapping, key: str,
           parse: Callable[[Scope, str, object], T]) -> T | None:
    """Parse ``mapping[key]`` if present (missing keys are reported by check_keys)."""
    if key not in mapping:
        return None
    return parse(scope, join_path(path, key), mapping[key])


def as_mapping(scope: Scope, path: str, value: object,
                expected: str = "a mapping") -> Mapping[Any, object] | None:
    """``value`` if it is a mapping, else None with the error reported."""
    if isinstance(value, Mapping):
        return value
    scope.error(path, f"expected {expected}, got {show(value)}")
    return None


def is_int(value: object) -> TypeGuard[int]:
    """An int that is not a bool (YAML's true/false are not numbers here)."""
    return isinstance(value, int) and not isinstance(value, bool)


def int_in_range(scope: Scope, path: str, value: object, low: int, high: int,
                  unit: str = "") -> int | None:
    if is_int(value) and low <= value <= high:
        return value
    scope.error(path, f"expected an integer {low}-{high}{unit}, got {show(value)}")
    return None


def parse_bool(scope: Scope, path: str, value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    scope.error(path, f"expected true or false, got {show(value)}")
    return None


def choice(scope: Scope, path: str, value: object, choices: Mapping[str, T]) -> T | None:
    if isinstance(value, str) and value in choices:
        return choices[value]
    options = ", ".join(repr(c) for c in choices)
    scope.error(path, f"expected one of {options}, got {show(value)}")
    return None


def show(value: object) -> str:
    """A value as the user wrote it in YAML, for error messages."""
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if value is None:
        return "nothing (null)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int) and value.bit_length() > 64:
        return f"a {value.bit_length():,}-bit integer"
    if isinstance(value, str) and len(value) > 60:
        value = value[:60]
    return _shorten(repr(value))


def _shorten(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def join_path(base: str, *parts: str | int) -> str:
    path = base
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part:
            path = f"{path}.{part}" if path else part
    return path
