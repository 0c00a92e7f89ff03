"""Template libraries to store rows and back.

A library in the store is one ``Library`` row per mobility domain (its
``defaults`` as JSON, and a ``generation`` bumped by every write) and one
``Template`` row per template (its YAML entry as JSON in ``body``, plus id,
name and the file it came from). Rows are written only after the library
validated in full (:func:`ryu_apps.library_files.load_library`, the same
errors as ``dynprov templates validate``), and read back through the same
validator, so a process never runs a library the validator did not accept.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Tuple

import yaml

from ryu_apps.core.template_model import TemplateLibrary
from ryu_apps.core.template_validation import build_library
from ryu_apps.library_files import YAML_SUFFIXES, load_library

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
    library = load_library(path)
    defaults: Mapping = {}
    rows: List[TemplateRow] = []
    for source, document in _documents(Path(path), str(path)):
        defaults = document.get("defaults", defaults) or defaults
        for entry in document.get("templates") or []:
            template = library.by_name(entry["name"])  # names are unique once validated
            rows.append(TemplateRow(template.template_id, template.name, source,
                                    _canonical_json(entry)))
    return LibraryRows(domain, _canonical_json(dict(defaults)),
                       tuple(sorted(rows, key=lambda row: row.template_id)))


def library_from_rows(rows: LibraryRows, origin: str = "store") -> TemplateLibrary:
    """Build (and validate again) the library these rows describe."""
    documents: List[Tuple[str, object]] = []
    defaults = json.loads(rows.defaults) if rows.defaults else {}
    if defaults:
        documents.append((f"{origin}: defaults of domain {rows.domain or 'main'}",
                          {"defaults": defaults}))
    for row in sorted(rows.templates, key=lambda r: r.template_id):
        documents.append((row.source, {"templates": [json.loads(row.body)]}))
    return build_library(documents, origin=f"{origin} (domain {rows.domain or 'main'})")


def _documents(path: Path, origin: str) -> Sequence[Tuple[str, Mapping]]:
    """The parsed documents of an already validated library, in load order."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in YAML_SUFFIXES
                       and not p.name.startswith(".") and p.is_file())
        named = [(os.path.join(origin, p.name), p) for p in files]
    else:
        named = [(origin, path)]
    return [(source, yaml.safe_load(file.read_text(encoding="utf-8")) or {})
            for source, file in named]


def _canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
