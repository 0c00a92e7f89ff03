"""Read the template library from YAML files (the edge around the pure validator).

A library is one YAML file or a directory of ``*.yaml``/``*.yml`` files read in
name order (hidden files and subdirectories are skipped). YAML syntax errors,
duplicate keys, unreadable files and files over a limit (size, nesting,
aliases: :mod:`ryu_apps.loaders.safe_yaml`) become
:class:`~ryu_apps.core.template_validation.TemplateError` entries with the
file and line, reported together with every validation error of the files
that did parse.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import yaml

from ryu_apps.core.template_model import TemplateLibrary
from ryu_apps.loaders.rule_lines import Lines, acl_lines, with_rule_lines
from ryu_apps.core.template_validation import (
    MAX_ERRORS,
    TemplateError,
    TemplateValidationError,
    ValidationMemo,
    build_library,
    capped,
)
from ryu_apps.loaders.safe_yaml import (
    DEFAULT_LIMITS,
    MIB,
    FastSafeLoader,
    GuardedComposer,
    InputProblem,
    YamlLimitError,
    describe_size,
    harden,
    problem_line,
    read_text,
)


YAML_SUFFIXES = (".yaml", ".yml")
#: Bytes of one file, and of every file of the library together.
MAX_FILE_BYTES = DEFAULT_LIMITS.max_bytes
MAX_LIBRARY_BYTES = 64 * MIB
#: YAML files in a library directory.
MAX_FILES = 20_000
#: Stands for the document of a file that could not be read or parsed.
_UNREADABLE = object()


class _StrictLoader(GuardedComposer, FastSafeLoader):
    """SafeLoader that reports duplicate keys and surprising YAML 1.1 integers.

    Plain PyYAML keeps the last of duplicate keys, reads ``0250`` as octal 168
    and ``1:30`` as base 60 (90). Each of those is recorded in ``problems`` as
    ``(line, message)``; the document is still constructed. It composes under
    the limits of :class:`~ryu_apps.loaders.safe_yaml.GuardedComposer` (libyaml's
    parser when PyYAML was built with it: about 10x faster on big libraries).
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.problems: List[Tuple[int, str]] = []
        self.rule_lines: Lines = {}

    def construct_document(self, node):
        self.rule_lines = acl_lines(node)
        return super().construct_document(node)

    def _problem(self, line: int, message: str) -> None:
        if len(self.problems) <= MAX_ERRORS:
            self.problems.append((line, message))

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
                    self._problem(line, f"duplicate key {_shown(key)} (first defined on "
                                        f"line {first_lines[key]})")
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
        self._problem(node.start_mark.line + 1, (
            f"{_shown(node.value)} reads as {_shown(value)} in YAML ({surprise}); "
            "write it as a plain decimal number, or quote it"))
        return value


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)
harden(_StrictLoader)


def _shown(value: object) -> str:
    """``repr(value)`` cut to 60 characters (a huge integer is described, not printed)."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"a {value.bit_length():,}-bit integer"
    text = repr(value[:60] if isinstance(value, str) else value)
    return text if len(text) <= 60 else text[:57] + "..."


class LoadCache:
    """What the last loads read: each file's text and parse, and the last library.

    Validation is a function of the files' texts, so a reload whose texts are
    all unchanged returns the library in force without parsing or validating,
    and a reload parses again only the files whose text changed.
    """

    def __init__(self) -> None:
        self.parsed: Dict[str, Tuple[str, object, List[TemplateError], Lines]] = {}
        self.texts: Tuple[Tuple[str, str], ...] | None = None
        self.library: TemplateLibrary | None = None
        self.memo: ValidationMemo = {}   # build_library's per-template results


def load_library(path: str | os.PathLike, cache: LoadCache | None = None) -> TemplateLibrary:
    """Load and validate the library at ``path`` (a directory or one file).

    Raises :class:`TemplateValidationError` listing every problem found.
    ``cache`` (kept by the caller between loads) skips the work whose input
    did not change.
    """
    return load_documents(path, cache)[0]


def load_documents(path: str | os.PathLike, cache: LoadCache | None = None,
                   on_progress: Optional[Callable[[str, str], None]] = None,
                   ) -> Tuple[TemplateLibrary, List[Tuple[str, object]]]:
    """:func:`load_library`, and the parsed ``(source, document)`` of every file.

    ``on_progress(stage, source)`` (optional) is called with ``("reading",
    file)`` before each file is read and ``("validating", library path)``
    before validation: the checker's worker reports where it is.
    """
    origin = str(path)
    files, errors = _library_files(Path(path), origin)
    documents, texts, unreadable, lines = _read_files(files, cache, on_progress, errors)
    if (cache is not None and not errors and cache.library is not None
            and cache.texts == tuple(texts)):
        return cache.library, documents
    if on_progress is not None:
        on_progress("validating", origin)
    try:
        # "the library is empty" would be noise when files are missing or unreadable
        library = build_library(documents, origin=origin,
                                require_templates=bool(files) and not unreadable,
                                memo=cache.memo if cache is not None else None)
        library = with_rule_lines(library, lines)
    except TemplateValidationError as failure:
        errors.extend(failure.errors)
    if errors:
        raise TemplateValidationError(
            capped(_in_file_order(errors, [s for s, _ in files]), origin))
    if cache is not None:
        cache.texts, cache.library = tuple(texts), library
    return library, documents  # bound: build_library either returned or added errors


def _read_files(files: List[Tuple[str, Path]], cache: LoadCache | None,
                on_progress: Optional[Callable[[str, str], None]],
                errors: List[TemplateError],
                ) -> Tuple[List[Tuple[str, object]], List[Tuple[str, str]], bool,
                           Dict[str, Lines]]:
    """Parse each file: its documents, texts, whether any was unreadable, and the
    lines of its ACL rules.

    The problems found reading the files are appended to ``errors``.
    """
    documents: List[Tuple[str, object]] = []
    texts: List[Tuple[str, str]] = []
    unreadable = False
    lines: Dict[str, Lines] = {}
    for source, file_path in files:
        if on_progress is not None:
            on_progress("reading", source)
        document, file_errors, text, lines[source] = _parse_cached(source, file_path, cache)
        texts.append((source, text))
        errors.extend(file_errors)
        if document is _UNREADABLE:
            unreadable = True
        else:
            documents.append((source, document))
    return documents, texts, unreadable, lines


def _parse_cached(source: str, file_path: Path, cache: LoadCache | None,
                  ) -> Tuple[object, List[TemplateError], str, Lines]:
    """A file's document, problems, text and rule lines, parsed again only when its
    text changed."""
    try:
        text = read_text(file_path, MAX_FILE_BYTES)
    except InputProblem as problem:
        if cache is not None:
            cache.parsed.pop(source, None)
        where = f"line {problem.line}" if problem.line else ""
        return _UNREADABLE, [TemplateError(source, None, where, str(problem))], "", {}
    if cache is None:
        document, problems, lines = _parse_text(source, text)
        return document, problems, "", lines
    cached = cache.parsed.get(source)
    if cached is not None and cached[0] == text:
        return cached[1], list(cached[2]), text, cached[3]
    document, problems, lines = _parse_text(source, text)
    cache.parsed[source] = (text, document, problems, lines)
    return document, list(problems), text, lines


def _parse_file(source: str, file_path: Path) -> Tuple[object, List[TemplateError]]:
    """One file's YAML document (or _UNREADABLE) and the problems found reading it."""
    document, errors, _, _ = _parse_cached(source, file_path, None)
    return document, errors


def _library_files(path: Path,
                   origin: str) -> Tuple[List[Tuple[str, Path]], List[TemplateError]]:
    """The ``(source name, path)`` of every file of the library, in load order.

    Refused, each with an error: more than MAX_FILES files, files that are not
    regular files, symbolic links that lead out of the directory, and the
    files past MAX_LIBRARY_BYTES in all.
    """
    if not path.is_dir():
        if os.path.lexists(path):
            return [(origin, path)], []
        return [], [TemplateError(origin, None, "", "no such file or directory")]
    names, problem = _listed_names(path)
    if problem:
        return [], [TemplateError(origin, None, "", problem)]
    return _files_within_limits(path, origin, names)


def _listed_names(path: Path) -> Tuple[List[str], str]:
    """A directory's YAML file names, or a problem (empty when there is none)."""
    try:
        names = _yaml_names(path)
    except OSError as error:
        return [], f"cannot list: {error.strerror}"
    if names is None:
        return [], f"more than {MAX_FILES:,} YAML files in this directory (the limit)"
    if not names:
        return [], "no *.yaml or *.yml files in this directory"
    return names, ""


def _files_within_limits(path: Path, origin: str, names: List[str],
                         ) -> Tuple[List[Tuple[str, Path]], List[TemplateError]]:
    """The files of ``names`` the library reads, and an error for each one refused."""
    root = path.resolve()
    files: List[Tuple[str, Path]] = []
    errors: List[TemplateError] = []
    total = 0
    for name in names:
        source, file_path = os.path.join(origin, name), path / name
        problem, size = _entry_problem(file_path, root)
        if problem == "directory":
            continue    # subdirectories are not part of the library
        if problem:
            errors.append(TemplateError(source, None, "", problem))
            continue
        total += size
        if total > MAX_LIBRARY_BYTES:
            errors.append(TemplateError(source, None, "", (
                f"the library's files reach {describe_size(MAX_LIBRARY_BYTES)} in all (the "
                "limit) at this file: it and the files after it were not read")))
            break
        files.append((source, file_path))
    return files, errors


def _yaml_names(path: Path) -> Optional[List[str]]:
    """The YAML file names of a directory, sorted; None past MAX_FILES."""
    names = []
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.name.startswith(".") or \
                    os.path.splitext(entry.name)[1] not in YAML_SUFFIXES:
                continue
            names.append(entry.name)
            if len(names) > MAX_FILES:
                return None
    return sorted(names)


def _entry_problem(file_path: Path, root: Path) -> Tuple[str, int]:
    """("", size) for a file to read, ("directory", 0) to skip, or (what is wrong, 0)."""
    try:
        info = file_path.stat()
    except OSError as error:
        return f"cannot read: {error.strerror}", 0
    if file_path.is_symlink():
        target = file_path.resolve()
        if root not in target.parents:
            return (f"symbolic link to {target}, outside the library directory "
                    "(refused: copy the file in, or link the whole directory)"), 0
    if file_path.is_dir():
        return "directory", 0
    if not file_path.is_file():
        return "not a regular file (a FIFO, device or socket): refused", 0
    return "", info.st_size


def _parse_text(source: str, text: str) -> Tuple[object, List[TemplateError], Lines]:
    """One file's YAML document (or _UNREADABLE), the problems found parsing it, and
    the lines of its ACL rules."""
    loader = _StrictLoader(text)
    try:
        document = loader.get_single_data()
    except YamlLimitError as error:
        return _UNREADABLE, [_limit_error(source, error)], {}
    except yaml.MarkedYAMLError as error:
        return _UNREADABLE, [_syntax_error(source, error)], {}
    except yaml.YAMLError as error:
        line = problem_line(error, text)
        problem = str(error).split("\n")[0]
        return _UNREADABLE, [TemplateError(source, None, f"line {line}" if line else "",
                                           f"invalid YAML: {problem}")], {}
    except RecursionError:
        return _UNREADABLE, [TemplateError(source, None, "", "invalid YAML: nested too deeply "
                                                            "to read")], {}
    except (ValueError, TypeError, OverflowError, MemoryError) as error:
        return _UNREADABLE, [TemplateError(source, None, "", f"cannot read this YAML: "
                                                            f"{type(error).__name__}: "
                                                            f"{str(error)[:200]}")], {}
    finally:
        loader.dispose()
    return document, [TemplateError(source, None, f"line {line}", message)
                      for line, message in loader.problems], loader.rule_lines


def _limit_error(source: str, error: YamlLimitError) -> TemplateError:
    mark = error.problem_mark
    column = f" at column {mark.column + 1}" if mark else ""
    return TemplateError(source, None, f"line {mark.line + 1}" if mark else "",
                         f"{error.problem}{column}")


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
