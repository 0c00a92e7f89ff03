"""Template libraries to store rows and back.

A library in the store is one ``Library`` row per mobility domain (its
``defaults`` as JSON, and a ``generation`` bumped by every write) and one
``Template`` row per template (its YAML entry as JSON in ``body``, plus id,
name and the file it came from). Rows are written only after the library
validated in full (:func:`ryu_apps.loaders.library_files.load_library`, the same
errors as ``dynprov templates validate``), and read back through the same
validator, so a process never runs a library the validator did not accept.

Rows read back are held to the file limits before they are parsed: a body
of at most ``MAX_FILE_BYTES``, JSON nested at most ``MAX_JSON_DEPTH`` deep,
at most ``MAX_TEMPLATES`` rows; a row over a limit or that is not JSON is a
located error of the library, like a bad file.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Dict, List, Mapping, Tuple

from ryu_apps.core.template_model import TemplateLibrary
from ryu_apps.core.template_validation import (
    MAX_TEMPLATES,
    TemplateError,
    TemplateValidationError,
    build_library,
    capped,
)
from ryu_apps.loaders.library_files import MAX_FILE_BYTES, load_documents
from ryu_apps.loaders.safe_yaml import DEFAULT_LIMITS, describe_size

MAX_JSON_DEPTH = DEFAULT_LIMITS.max_depth
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET = re.compile(r"[\[\]{}]")

MAIN_DOMAIN = ""


@dataclass(frozen=True)
class TemplateRow:
    """What one ``Template`` row holds."""

    template_id: int
    name: str
    source: str
    body: str  # the template's YAML entry, as canonical JSON


@dataclass(frozen=True)
class LibraryRows:
    """A domain's library as rows: its defaults (JSON) and its templates."""

    domain: str
    defaults: str
    templates: Tuple[TemplateRow, ...]

    def by_id(self) -> Dict[int, TemplateRow]:
        return {row.template_id: row for row in self.templates}


def rows_from_files(path: str | os.PathLike, domain: str = MAIN_DOMAIN) -> LibraryRows:
    """Validate the library at ``path`` and turn it into rows.

    Raises :class:`~ryu_apps.core.template_validation.TemplateValidationError`
    (every problem, with file and line) exactly as loading it for a controller would.
    """
    library, documents = load_documents(path)
    named = {template.name: template for template in library}   # unique once validated
    defaults: Mapping = {}
    rows: List[TemplateRow] = []
    for source, document in documents:
        if not isinstance(document, Mapping):   # an empty file: validated, nothing else
            continue
        defaults = document.get("defaults", defaults) or defaults
        for entry in document.get("templates") or []:
            template = named[entry["name"]]
            rows.append(TemplateRow(template.template_id, template.name, source,
                                    _canonical_json(entry)))
    return LibraryRows(domain, _canonical_json(dict(defaults)),
                       tuple(sorted(rows, key=lambda row: row.template_id)))


def library_from_rows(rows: LibraryRows, origin: str = "store") -> TemplateLibrary:
    """Build (and validate again) the library these rows describe.

    Raises TemplateValidationError (rows over a limit, not JSON, or invalid).
    """
    where = f"{origin} (domain {rows.domain or 'main'})"
    if len(rows.templates) > MAX_TEMPLATES:
        raise TemplateValidationError([TemplateError(where, None, "", (
            f"{len(rows.templates):,} template rows, more than the limit of "
            f"{MAX_TEMPLATES:,}"))])
    documents: List[Tuple[str, object]] = []
    errors: List[TemplateError] = []
    defaults_source = f"{origin}: defaults of domain {rows.domain or 'main'}"
    defaults = _json(rows.defaults, defaults_source, None, errors) if rows.defaults else {}
    if defaults:
        documents.append((defaults_source, {"defaults": defaults}))
    for row in sorted(rows.templates, key=lambda r: r.template_id):
        body = _json(row.body, row.source, f"template row {row.template_id}", errors)
        if body is not None:
            documents.append((row.source, {"templates": [body]}))
    try:
        library = build_library(documents, origin=where, require_templates=not errors)
    except TemplateValidationError as failure:
        errors.extend(failure.errors)
    if errors:
        raise TemplateValidationError(capped(errors, where))
    return library


def _json(text: str, source: str, label: str | None, errors: List[TemplateError]) -> object:
    """A row's JSON under the limits, or None after adding what is wrong to ``errors``."""
    problem = None
    if len(text) > MAX_FILE_BYTES:
        problem = (f"stored body of {len(text):,} characters, more than the limit of "
                   f"{describe_size(MAX_FILE_BYTES)}")
    elif _json_depth(text) > MAX_JSON_DEPTH:
        problem = f"stored body nested deeper than {MAX_JSON_DEPTH} levels (the limit)"
    else:
        try:
            return json.loads(text)
        except (ValueError, RecursionError) as error:
            problem = f"stored body is not JSON: {str(error)[:200]}"
    errors.append(TemplateError(source, label, "", problem))
    return None


def _json_depth(text: str) -> int:
    """How deep ``[`` and ``{`` nest in JSON text (strings skipped), without parsing."""
    depth = deepest = 0
    for bracket in _JSON_BRACKET.findall(_JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
