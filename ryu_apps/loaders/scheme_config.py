"""The identifier scheme in force, built from its configuration spec.

The edge around :mod:`ryu_apps.core.identifiers`: it reads the table file of
``table:PATH``. A table file is YAML::

    entries:
      "02:aa:00:00:00:00/16": 0x00FA   # MACs 02:aa:.. select template 250
      "02:00:00:00:00:01": 252         # one exact MAC

Every scalar is read as text (no YAML 1.1 surprises: an unquoted
``12:30:00:00:00:01`` stays a MAC, not a base-60 number) and template ids are
decimal or ``0x`` hex. Duplicate keys are an error. The file is read under
the limits of :mod:`ryu_apps.loaders.safe_yaml` (size, nesting, aliases).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import yaml

from ryu_apps.core.identifiers import (
    IdentifierError,
    IdentifierScheme,
    TableScheme,
    parse_number,
    scheme_from_spec,
)
from ryu_apps.loaders.safe_yaml import GuardedComposer, InputProblem, harden, read_text

TABLE_SPEC_PREFIX = "table:"
ENTRIES_KEY = "entries"


class _TextLoader(GuardedComposer, yaml.SafeLoader):
    """Safe YAML with every scalar kept as text and duplicate keys refused."""

    yaml_implicit_resolvers: dict = {}

    def construct_mapping(self, node, deep=False):
        seen: Dict[object, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise _TableFileError(f"line {key_node.start_mark.line + 1}: key must be "
                                      f"text (a MAC or MAC/LEN), got {_kind(key)}")
            if key in seen:
                raise _TableFileError(
                    f"line {key_node.start_mark.line + 1}: duplicate key {key!r} "
                    f"(first on line {seen[key]})")
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


harden(_TextLoader)   # explicit tags (!!int, !!timestamp) still reach constructors


class _TableFileError(Exception):
    """Internal: a problem in a table file, to be prefixed with its path."""


def load_scheme(spec: str) -> IdentifierScheme:
    """The scheme of a spec: ``table:PATH`` or any spec of ``scheme_from_spec``."""
    text = spec.strip() if isinstance(spec, str) else spec
    if isinstance(text, str) and text.lower().startswith(TABLE_SPEC_PREFIX):
        path = text[len(TABLE_SPEC_PREFIX):].strip()
        if not path:
            raise IdentifierError(
                f"identifier scheme {spec!r} names no file: expected table:PATH")
        return load_table_scheme(Path(path))
    if isinstance(text, str) and text.lower() == "table":
        raise IdentifierError(
            "identifier scheme 'table' needs its file: expected table:PATH, "
            "a YAML file with an 'entries' mapping")
    return scheme_from_spec(text)


def load_table_scheme(path: Path) -> TableScheme:
    """The table scheme of a YAML table file; errors name the file."""
    entries = load_table_entries(path)
    try:
        return TableScheme(entries)
    except IdentifierError as error:
        raise IdentifierError(f"{path}: {error}") from None


def load_table_entries(path: Path) -> Dict[str, int]:
    """The ``entries`` of a table file: ``{MAC or MAC/LEN: template id}``."""
    try:
        return _entries_of(_read_yaml(path))
    except _TableFileError as problem:
        raise IdentifierError(f"{path}: {problem}") from None


def _read_yaml(path: Path) -> object:
    try:
        text = read_text(path)
    except InputProblem as problem:
        if problem.kind == "not-utf8":
            raise _TableFileError(f"table file is {problem.message}, "
                                  f"line {problem.line}") from None
        raise _TableFileError(f"cannot read table file: {problem.message}") from None
    try:
        return yaml.load(text, Loader=_TextLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as error:
        raise _TableFileError(f"not valid YAML: {_yaml_problem(error)}") from None
    except (RecursionError, ValueError, TypeError, MemoryError) as error:
        raise _TableFileError(f"not valid YAML: {type(error).__name__}") from None


def _yaml_problem(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else problem


def _entries_of(document: object) -> Dict[str, int]:
    expected = f"expected a mapping with the key {ENTRIES_KEY!r}"
    if not isinstance(document, dict):
        raise _TableFileError(f"{expected}, got {_kind(document)}")
    unknown = sorted(set(document) - {ENTRIES_KEY})
    if unknown:
        raise _TableFileError(f"unknown key {unknown[0]!r}: {expected} only")
    if ENTRIES_KEY not in document:
        raise _TableFileError(f"no {ENTRIES_KEY!r}: {expected}")
    entries = document[ENTRIES_KEY]
    if not isinstance(entries, dict):
        raise _TableFileError(
            f"{ENTRIES_KEY!r} must map MAC or MAC/LEN to a template id, got {_kind(entries)}")
    return {key: _template_id(key, value) for key, value in entries.items()}


def _template_id(key: str, value: object) -> int:
    if not isinstance(value, str):
        raise _TableFileError(
            f"table entry {key!r}: template id must be a number, got {_kind(value)}")
    try:
        return parse_number(value, "template id")
    except IdentifierError as error:
        raise _TableFileError(f"table entry {key!r}: {error}") from None


def _kind(value: object) -> str:
    if value is None or value == "":
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)
