"""Read the template library from YAML files (the edge around the pure validator).

A library is one YAML file or a directory of ``*.yaml``/``*.yml`` files read in
name order (hidden files and subdirectories are skipped). YAML syntax errors,
duplicate keys and unreadable files become
:class:`~ryu_apps.core.template_validation.TemplateError` entries with the
file and line, reported together with every validation error of the files
that did parse.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import yaml

from ryu_apps.core.template_model import TemplateLibrary
from ryu_apps.core.template_validation import (
    TemplateError,
    TemplateValidationError,
    build_library,
)

YAML_SUFFIXES = (".yaml", ".yml")
#: Stands for the document of a file that could not be read or parsed.
_UNREADABLE = object()


#: libyaml's parser when PyYAML was built with it (about 10x faster on big
#: libraries); the constructor hooks below are Python either way.
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_BaseLoader):
    """SafeLoader that reports duplicate keys and surprising YAML 1.1 integers.

    Plain PyYAML keeps the last of duplicate keys, reads ``0250`` as octal 168
    and ``1:30`` as base 60 (90). Each of those is recorded in ``problems`` as
    ``(line, message)``; the document is still constructed.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.problems: List[Tuple[int, str]] = []

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            self._record_duplicates(node)
        return super().construct_mapping(node, deep=deep)

    def _record_duplicates(self, node: yaml.MappingNode) -> None:
        first_lines: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # "<<" merges may be overridden; that is not a duplicate
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in first_lines:
                    self.problems.append((line, f"duplicate key {key!r} (first defined "
                                                f"on line {first_lines[key]})"))
                else:
                    first_lines[key] = line
            except TypeError:
                continue  # unhashable key: the base constructor reports it

    def construct_yaml_int(self, node):
        value = super().construct_yaml_int(node)
        text = str(node.value).replace("_", "").lstrip("+-")
        if ":" in text:
            surprise = "':' means base 60"
        elif len(text) > 1 and text[0] == "0" and text[1] not in "xXbB":
            surprise = "a leading 0 means octal"
        else:
            return value
        self.problems.append((node.start_mark.line + 1, (
            f"{node.value!r} reads as {value} in YAML ({surprise}); "
            "write it as a plain decimal number, or quote it")))
        return value


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)


class LoadCache:
    """What the last loads read: each file's text and parse, and the last library.

    Validation is a function of the files' texts, so a reload whose texts are
    all unchanged returns the library in force without parsing or validating,
    and a reload parses again only the files whose text changed.
    """

    def __init__(self) -> None:
        self.parsed: Dict[str, Tuple[str, object, List[TemplateError]]] = {}
        self.texts: Tuple[Tuple[str, str], ...] | None = None
        self.library: TemplateLibrary | None = None
        self.memo: Dict[tuple, object] = {}   # build_library's per-template results


def load_library(path: str | os.PathLike, cache: LoadCache | None = None) -> TemplateLibrary:
    """Load and validate the library at ``path`` (a directory or one file).

    Raises :class:`TemplateValidationError` listing every problem found.
    ``cache`` (kept by the caller between loads) skips the work whose input
    did not change.
    """
    origin = str(path)
    files, errors = _library_files(Path(path), origin)
    documents: List[Tuple[str, object]] = []
    unreadable = False
    texts: List[Tuple[str, str]] = []
    for source, file_path in files:
        document, file_errors, text = _parse_cached(source, file_path, cache)
        texts.append((source, text))
        errors.extend(file_errors)
        if document is _UNREADABLE:
            unreadable = True
        else:
            documents.append((source, document))
    if (cache is not None and not errors and cache.library is not None
            and cache.texts == tuple(texts)):
        return cache.library
    try:
        # "the library is empty" would be noise when files are missing or unreadable
        library = build_library(documents, origin=origin,
                                require_templates=bool(files) and not unreadable,
                                memo=cache.memo if cache is not None else None)
    except TemplateValidationError as failure:
        errors.extend(failure.errors)
    if errors:
        raise TemplateValidationError(_in_file_order(errors, [s for s, _ in files]))
    if cache is not None:
        cache.texts, cache.library = tuple(texts), library
    return library  # bound: build_library either returned or added errors


def _parse_cached(source: str, file_path: Path,
                  cache: LoadCache | None) -> Tuple[object, List[TemplateError], str]:
    """A file's document and problems, parsed again only when its text changed."""
    if cache is None:
        return (*_parse_file(source, file_path), "")
    try:
        text = file_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        cache.parsed.pop(source, None)
        return (*_parse_file(source, file_path), "")
    cached = cache.parsed.get(source)
    if cached is not None and cached[0] == text:
        return cached[1], list(cached[2]), text
    document, problems = _parse_text(source, text)
    cache.parsed[source] = (text, document, problems)
    return document, list(problems), text


def _library_files(path: Path,
                   origin: str) -> Tuple[List[Tuple[str, Path]], List[TemplateError]]:
    """The ``(source name, path)`` of every file of the library, in load order."""
    if path.is_dir():
        names = sorted(entry.name for entry in path.iterdir()
                       if entry.suffix in YAML_SUFFIXES and not entry.name.startswith(".")
                       and entry.is_file())
        if not names:
            return [], [TemplateError(origin, None, "",
                                      "no *.yaml or *.yml files in this directory")]
        return [(os.path.join(origin, name), path / name) for name in names], []
    if path.exists():
        return [(origin, path)], []
    return [], [TemplateError(origin, None, "", "no such file or directory")]


def _parse_file(source: str, file_path: Path) -> Tuple[object, List[TemplateError]]:
    """One file's YAML document (or _UNREADABLE) and the problems found reading it."""
    try:
        text = file_path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        return _UNREADABLE, [TemplateError(source, None, "", f"not UTF-8 text ({error.reason} "
                                                             f"at byte {error.start})")]
    except OSError as error:
        return _UNREADABLE, [TemplateError(source, None, "", f"cannot read: {error.strerror}")]
    return _parse_text(source, text)


def _parse_text(source: str, text: str) -> Tuple[object, List[TemplateError]]:
    """One file's YAML document (or _UNREADABLE) and the problems found parsing it."""
    loader = _StrictLoader(text)
    try:
        document = loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        return _UNREADABLE, [_syntax_error(source, error)]
    except yaml.YAMLError as error:
        return _UNREADABLE, [TemplateError(source, None, "", f"invalid YAML: {error}")]
    finally:
        loader.dispose()
    return document, [TemplateError(source, None, f"line {line}", message)
                      for line, message in loader.problems]


def _syntax_error(source: str, error: yaml.MarkedYAMLError) -> TemplateError:
    mark = error.problem_mark or error.context_mark
    what = error.problem or "syntax error"
    if error.context:
        what = f"{what} ({error.context})"
    where = f"line {mark.line + 1}" if mark else ""
    column = f" at column {mark.column + 1}" if mark else ""
    return TemplateError(source, None, where, f"invalid YAML: {what}{column}")


def _in_file_order(errors: Sequence[TemplateError],
                   sources: Sequence[str]) -> List[TemplateError]:
    """Errors grouped by file in load order (stable); library-wide ones last."""
    rank = {source: index for index, source in enumerate(sources)}
    return sorted(errors, key=lambda e: rank.get(e.source, len(rank)))


class LibraryKeeper:
    """Holds the library in force; a failed reload keeps the previous one."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = path
        self._cache = LoadCache()
        self._current = load_library(path, self._cache)

    @property
    def current(self) -> TemplateLibrary:
        """The library in force."""
        return self._current

    def reload(self) -> TemplateLibrary:
        """Load the library again; on failure raise and keep the current one."""
        library = load_library(self.path, self._cache)
        self._current = library
        return library
